"""The hash chain: canonical form, record HMACs, and strict parsing of log lines.

Every record carries ``socialgate.chain = {"worker", "seq", "prev", "hash"}``:
``hash`` is HMAC-SHA256 (hex) under the audit key over the canonical form of
the whole record *without* ``chain.hash``; ``prev`` is the previous record's
``hash`` (64 zeros for the first record of a worker's chain). The line written
is itself the canonical form of the complete record, so a reader can insist on
byte equality: whitespace games and duplicate keys are alterations too.

Format 2 (forward-secure sealing, `epochs.py`) adds ``chain.epoch``: the record is sealed
under that epoch's key, not one key for ever. A chain without ``epoch`` is format 1.

A record that starts a new segment after an incident (torn tail found at
start, failed write or fsync, log file removed) also carries
``chain.break = {"reason", ...}``; see docs/audit-trail.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from proxy_addons.audit.record import Record

GENESIS = "0" * 64
CHAIN_KEY = "chain"  # under the project namespace: record["socialgate"]["chain"]
NAMESPACE = "socialgate"


def canonical(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept, no NaN: one spelling per value."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def record_hmac(key: bytes, record: Record) -> str:
    """HMAC-SHA256 (hex) over the canonical record with ``socialgate.chain.hash`` left out."""
    ns = record.get(NAMESPACE)
    if not isinstance(ns, dict) or not isinstance(ns.get(CHAIN_KEY), dict):
        raise ValueError("record has no socialgate.chain")
    chain = dict(ns[CHAIN_KEY])
    chain.pop("hash", None)
    unsigned = {**record, NAMESPACE: {**ns, CHAIN_KEY: chain}}
    return hmac.new(key, canonical(unsigned).encode("utf-8"), hashlib.sha256).hexdigest()


_UNSIGNED_CHAIN = '"chain":{"prev":"'
_UNSIGNED_EPOCH = '"chain":{"epoch":'


def mac_of(key: bytes) -> hmac.HMAC:
    """A keyed HMAC to copy per record (cheaper than keying a new one every time)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def sealed_line(key: bytes | hmac.HMAC, record: Record) -> tuple[str, str]:
    """The canonical line of ``record`` with ``chain.hash`` filled in, and that hash.

    ``record`` carries ``socialgate.chain`` without ``hash``. The HMAC input is the
    canonical text of exactly that record, and ``hash`` sorts first among the chain's
    keys (after ``epoch``, a number, in format 2), so the line is that same text with
    ``"hash":"…",`` inserted there: one serialisation per record instead of two. A quote
    is escaped inside JSON strings, so the marker can only be the chain's own structure;
    a chain with ``break`` (sorted before ``hash``) or any doubt takes the two-pass path.
    """
    unsigned = canonical(record)
    if isinstance(key, bytes):
        digest = hmac.new(key, unsigned.encode("utf-8"), hashlib.sha256).hexdigest()
    else:
        mac = key.copy()
        mac.update(unsigned.encode("utf-8"))
        digest = mac.hexdigest()
    marker = _UNSIGNED_CHAIN
    at = unsigned.find(marker)
    if at < 0:
        marker = _UNSIGNED_EPOCH
        at = unsigned.find(marker)
    if at < 0 or unsigned.find(marker, at + 1) >= 0:
        ns = record[NAMESPACE]
        full = {**record, NAMESPACE: {**ns, CHAIN_KEY: {**ns[CHAIN_KEY], "hash": digest}}}
        return canonical(full), digest
    cut = at + len('"chain":{')
    if marker is _UNSIGNED_EPOCH:
        cut = unsigned.index(",", cut) + 1  # after the epoch number
    return f'{unsigned[:cut]}"hash":"{digest}",{unsigned[cut:]}', digest


def seal(
    key: bytes,
    record: Record,
    *,
    worker: str,
    seq: int,
    prev: str,
    brk: dict[str, Any] | None = None,
) -> Record:
    """A copy of ``record`` with its chain fields (including the HMAC) filled in."""
    chain: dict[str, Any] = {"worker": worker, "seq": seq, "prev": prev}
    if brk is not None:
        chain["break"] = brk
    ns = dict(record.get(NAMESPACE) or {})
    ns[CHAIN_KEY] = chain
    sealed = {**record, NAMESPACE: ns}
    chain["hash"] = record_hmac(key, sealed)
    return sealed


def chain_of(record: Record) -> dict[str, Any]:
    """The chain object of a parsed record (``ValueError`` if absent or malformed)."""
    ns = record.get(NAMESPACE)
    chain = ns.get(CHAIN_KEY) if isinstance(ns, dict) else None
    if not isinstance(chain, dict):
        raise ValueError("no socialgate.chain")
    if not isinstance(chain.get("worker"), str) or not chain["worker"]:
        raise ValueError("socialgate.chain.worker missing")
    seq = chain.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError("socialgate.chain.seq missing or not a positive integer")
    epoch = chain.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0):
        raise ValueError("socialgate.chain.epoch not a non-negative integer")
    for name in ("prev", "hash"):
        value = chain.get(name)
        if not isinstance(value, str) or len(value) != 64:
            raise ValueError(f"socialgate.chain.{name} missing or not 64 hex digits")
    return chain


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_line(line: str) -> Record:
    """Parse one log line strictly: one JSON object, no duplicate keys, canonical spelling."""
    obj = json.loads(line, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if canonical(obj) != line:
        raise ValueError("not in canonical form (the line was re-written)")
    return obj
