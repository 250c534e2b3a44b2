"""A root intruder on the proxy host, for the shipping tests: holds both keys and rewrites.

`rewrite_log` edits records and re-seals the whole chain with the stolen chain key, so the
log verifies on its own; `resign_checkpoints` rewrites the local checkpoint file to match,
signed with the stolen signing key, so log and checkpoint file verify together. Only
checkpoints shipped before the rewrite still show what the chain was.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from proxy_addons.audit.chain import CHAIN_KEY, GENESIS, NAMESPACE, canonical, seal
from proxy_addons.audit.checkpoints import sign

Records = list[dict[str, Any]]


def _unsealed(record: dict[str, Any]) -> dict[str, Any]:
    ns = {k: v for k, v in record[NAMESPACE].items() if k != CHAIN_KEY}
    return {**record, NAMESPACE: ns}


def rewrite_log(log: pathlib.Path, key: bytes, edit: Callable[[Records], Records]) -> None:
    """Apply ``edit`` to the records of ``log`` and re-seal them as one chain from seq 1."""
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    worker = records[0][NAMESPACE][CHAIN_KEY]["worker"]
    out: list[str] = []
    prev = GENESIS
    for seq, record in enumerate(edit(records), 1):
        sealed = seal(key, _unsealed(record), worker=worker, seq=seq, prev=prev)
        prev = sealed[NAMESPACE][CHAIN_KEY]["hash"]
        out.append(canonical(sealed) + "\n")
    log.write_text("".join(out), encoding="utf-8")


def resign_checkpoints(
    checkpoints: pathlib.Path, signing_key: Ed25519PrivateKey, log: pathlib.Path
) -> None:
    """Make every checkpoint agree with ``log`` again; those past its end are dropped."""
    hashes = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        chain = json.loads(line)[NAMESPACE][CHAIN_KEY]
        hashes[chain["seq"]] = chain["hash"]
    out: list[str] = []
    for line in checkpoints.read_text(encoding="utf-8").splitlines():
        old = json.loads(line)
        if old["seq"] not in hashes:
            continue
        when = dt.datetime.fromisoformat(old["@timestamp"].replace("Z", "+00:00"))
        new = sign(
            signing_key, worker=old["worker"], n=old["n"], seq=old["seq"],
            hash_=hashes[old["seq"]], log_name=old["file"], now=when,
        )  # fmt: skip
        out.append(canonical(new) + "\n")
    checkpoints.write_text("".join(out), encoding="utf-8")


def edit_user(name: str, at: int) -> Callable[[Records], Records]:
    """An edit that puts ``name`` as ``user.name`` of the record at index ``at``."""

    def edit(records: Records) -> Records:
        records[at] = {**records[at], "user": {**records[at].get("user", {}), "name": name}}
        return records

    return edit


def drop_last(count: int) -> Callable[[Records], Records]:
    """An edit that removes the last ``count`` records."""
    return lambda records: records[:-count]
