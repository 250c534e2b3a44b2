"""Signed checkpoints: Ed25519 signatures over a worker's chain head.

One JSON line per checkpoint, in a file apart from the log that is only ever
appended to (so it can be shipped off the host as it grows):

    {"@timestamp": ..., "worker": w, "n": 7, "seq": 7000, "hash": <chain hash of seq>,
     "file": "audit.jsonl", "public_key": <hex>, "signature": <hex>}

``n`` counts a worker's checkpoints (1, 2, 3 ...); the signature covers the
canonical form of everything else. A checkpoint proves the chain reached
``seq`` with that hash, so a log that ends earlier was truncated.

A process can also send every checkpoint it appends to a file elsewhere as it is
made (`ship_appends`, used by the ``socialgate_checkpoint_syslog`` shipper). The
verifier reads the checkpoint file itself and shipped copies of it (syslog files,
journal exports: `read_checkpoint_file`) and checks them together
(`gather_checkpoints`): a shipped copy may have lost or repeated checkpoints in
transit (notes), but two checkpoints numbered alike that disagree are damage: one
was rewritten after it left the host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import itertools
import json
import logging
import os
import pathlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from proxy_addons.audit.chain import canonical, parse_line
from proxy_addons.audit.durable import write_all
from proxy_addons.audit.files import (  # re-exported: the AuditTrail addon imports it from here
    default_checkpoints_path as default_checkpoints_path,
)
from proxy_addons.audit.keys import public_key_text
from proxy_addons.audit.record import timestamp
from proxy_addons.audit.shipped import checkpoint_in
from proxy_addons.problems import Problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    file: str  # the checkpoint file
    line: int
    worker: str
    n: int
    seq: int
    hash: str
    public_key: str
    signed_ok: bool
    shipped: bool = False  # read from a syslog line, not a bare checkpoint line


def sign(
    key: Ed25519PrivateKey,
    *,
    worker: str,
    n: int,
    seq: int,
    hash_: str,
    log_name: str,
    now: dt.datetime,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@timestamp": timestamp(now),
        "worker": worker,
        "n": n,
        "seq": seq,
        "hash": hash_,
        "file": log_name,
        "public_key": public_key_text(key.public_key()),
    }
    body["signature"] = key.sign(canonical(body).encode("utf-8")).hex()
    return body


def signature_valid(body: dict[str, Any], public_key: Ed25519PublicKey) -> bool:
    unsigned = {k: v for k, v in body.items() if k != "signature"}
    try:
        public_key.verify(
            bytes.fromhex(str(body.get("signature", ""))), canonical(unsigned).encode()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@contextlib.contextmanager
def _locked_append(path: pathlib.Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # Several workers (and the admin CLI) may share one checkpoint file.
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


Send = Callable[[dict[str, Any]], None]
_shipping: dict[str, Send] = {}
_shipping_lock = threading.Lock()


def ship_appends(path: pathlib.Path, send: Send) -> Callable[[], None]:
    """From now on, each checkpoint this process appends to ``path`` also goes to ``send``
    (once fsynced; ``send`` must not block). Returns the undo."""
    where = os.path.abspath(path)
    with _shipping_lock:
        _shipping[where] = send

    def undo() -> None:
        with _shipping_lock:
            if _shipping.get(where) is send:
                del _shipping[where]

    return undo


def append_checkpoint(path: pathlib.Path, body: dict[str, Any]) -> None:
    """Append one signed checkpoint and fsync it (raises OSError), then ship it if asked."""
    data = (canonical(body) + "\n").encode("utf-8")
    with _locked_append(path) as fd:
        write_all(fd, data)
        os.fsync(fd)
    if not _shipping:
        return
    with _shipping_lock:
        send = _shipping.get(os.path.abspath(path))
    if send is not None:
        try:
            send(body)
        except Exception:  # shipping must never cost the trail its checkpoint
            logger.exception("socialgate audit: cannot hand a checkpoint to the shipper")


def last_checkpoint_number(path: pathlib.Path, worker: str) -> int:
    """The highest ``n`` already issued for ``worker`` (0 if none, or no file)."""
    last = 0
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    body = json.loads(line)
                except ValueError:
                    continue
                if isinstance(body, dict) and body.get("worker") == worker:
                    n = body.get("n")
                    if isinstance(n, int):
                        last = max(last, n)
    except FileNotFoundError:
        return 0
    return last


@dataclass
class CheckpointFile:
    """One checkpoint file or shipped copy, read: what it holds and what is wrong with it."""

    path: pathlib.Path
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    shipped: bool = False  # some line held its checkpoint inside a syslog line


_MAX_SKIPPED_NOTES = 10  # per shipped file: a syslog file may hold other messages


def _checkpoint(
    path: pathlib.Path, lineno: int, body: dict[str, Any], trusted: Ed25519PublicKey | None
) -> Checkpoint:
    worker, n, seq = body["worker"], body["n"], body["seq"]
    hash_, pub = body["hash"], body["public_key"]
    if not (isinstance(worker, str) and isinstance(n, int) and isinstance(seq, int)):
        raise ValueError("bad field types")
    key = trusted or Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub))
    return Checkpoint(
        str(path), lineno, worker, n, seq, str(hash_), str(pub), signature_valid(body, key)
    )


def read_checkpoint_file(path: pathlib.Path, trusted: Ed25519PublicKey | None) -> CheckpointFile:
    """Parse a checkpoint file, or a syslog file / journal export holding shipped ones.

    In a checkpoint file every line must be a checkpoint; in a shipped copy (any line
    holds its checkpoint inside other text) lines without one are notes, not damage.
    Without a ``trusted`` public key each checkpoint is checked against the key it
    carries, and `gather_checkpoints` requires one key per worker. Raises OSError.
    """
    out = CheckpointFile(path)
    others: list[tuple[int, str]] = []
    with path.open(encoding="utf-8", errors="replace", newline="\n") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith("\n"):
                others.append((lineno, "torn last checkpoint line"))
                continue
            text, wrapped = raw[:-1], False
            try:
                body: dict[str, Any] | None = parse_line(text)
            except ValueError as e:
                body, wrapped, error = checkpoint_in(text), True, str(e)
                if body is None:
                    others.append((lineno, f"not a checkpoint: {error}"))
                    continue
            assert body is not None
            try:
                cp = _checkpoint(path, lineno, body, trusted)
            except (ValueError, KeyError, TypeError) as e:
                out.problems.append((lineno, f"not a checkpoint: {e}"))
                continue
            out.shipped = out.shipped or wrapped
            out.checkpoints.append(dataclasses.replace(cp, shipped=True) if wrapped else cp)
    if not out.shipped:
        out.problems = sorted(out.problems + others)
    else:
        for lineno, message in others[:_MAX_SKIPPED_NOTES]:
            out.notes.append((lineno, f"skipped: {message.removeprefix('not a checkpoint: ')}"))
        if len(others) > _MAX_SKIPPED_NOTES:
            out.notes.append(
                (0, f"{len(others)} lines hold no checkpoint (first {_MAX_SKIPPED_NOTES} shown)")
            )
    return out


@dataclass
class Gathered:
    """Checkpoints of several files, cross-checked: per worker, by the seq they prove."""

    by_worker: dict[str, dict[int, Checkpoint]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    count: int = 0  # distinct checkpoints accepted


def _ranges(numbers: list[int]) -> str:
    parts: list[str] = []
    for n in numbers:
        if parts and parts[-1].split("-")[-1] == str(n - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ", ".join(parts)


def gather_checkpoints(paths: Sequence[pathlib.Path], trusted: Ed25519PublicKey | None) -> Gathered:
    """Read checkpoint files and shipped copies and check them against each other.

    A checkpoint file must number each worker's checkpoints 1, 2, 3 … in order; a shipped
    copy may miss some or repeat them (syslog loses and repeats messages), which is a note.
    Damage: a bad signature, another key than the worker's first (without ``trusted``), and
    two checkpoints with one number that disagree (one was rewritten after it was shipped).
    Raises OSError (with its ``filename``).
    """
    g = Gathered()
    numbered: dict[str, dict[int, Checkpoint]] = {}
    keys: dict[str, str] = {}
    shipped_workers: set[str] = set()
    for path in paths:
        f = read_checkpoint_file(path, trusted)
        g.problems.extend(Problem(str(path), line, msg) for line, msg in f.problems)
        g.notes.extend(Problem(str(path), line, msg) for line, msg in f.notes)
        last: dict[str, Checkpoint] = {}
        for cp in f.checkpoints:
            where = (cp.file, cp.line)
            if not cp.signed_ok:
                g.problems.append(Problem(*where, "checkpoint signature is not valid"))
                continue
            if trusted is None and keys.setdefault(cp.worker, cp.public_key) != cp.public_key:
                g.problems.append(
                    Problem(*where, f"checkpoint of {cp.worker!r} signed by a different key")
                )
                continue
            before = last.get(cp.worker)
            if f.shipped:
                shipped_workers.add(cp.worker)
            elif before is not None and (cp.n != before.n + 1 or cp.seq < before.seq):
                what = (
                    "missing before it"
                    if cp.n > before.n + 1 and cp.seq >= before.seq
                    else "signed out of order"
                )
                g.problems.append(
                    Problem(
                        *where,
                        f"checkpoint {cp.n} (seq {cp.seq}) of {cp.worker!r} after checkpoint "
                        f"{before.n} (seq {before.seq}): {what}",
                    )
                )
            last[cp.worker] = cp
            known = numbered.setdefault(cp.worker, {}).get(cp.n)
            if known is None:
                numbered[cp.worker][cp.n] = cp
            elif (known.seq, known.hash) != (cp.seq, cp.hash):
                g.problems.append(
                    Problem(
                        *where,
                        f"checkpoint {cp.n} of {cp.worker!r} (seq {cp.seq}) disagrees with "
                        f"{known.file}:{known.line} (seq {known.seq}): one of them was "
                        "rewritten after the other was made",
                    )
                )
    for worker in sorted(numbered):
        ordered = [numbered[worker][n] for n in sorted(numbered[worker])]
        g.count += len(ordered)
        for a, b in itertools.pairwise(ordered):
            if (a.shipped or b.shipped) and b.seq < a.seq:
                g.problems.append(
                    Problem(
                        b.file,
                        b.line,
                        f"checkpoint {b.n} (seq {b.seq}) of {worker!r} proves less than "
                        f"checkpoint {a.n} (seq {a.seq}) at {a.file}:{a.line}: signed out of order",
                    )
                )
        if worker in shipped_workers:
            have = set(numbered[worker])
            missing = [n for n in range(1, max(have) + 1) if n not in have]
            if missing:
                g.notes.append(
                    Problem(
                        ordered[0].file,
                        0,
                        f"checkpoints {_ranges(missing)} of {worker!r} are in no file given "
                        "(not shipped or lost in transit; the checkpoint file on the host has "
                        "them)",
                    )
                )
        by_seq = g.by_worker.setdefault(worker, {})
        for cp in ordered:
            by_seq.setdefault(cp.seq, cp)
    return g


def read_checkpoints(
    path: pathlib.Path, trusted: Ed25519PublicKey | None
) -> tuple[list[Checkpoint], list[tuple[int, str]]]:
    """(checkpoints, [(line, problem)]) of one file; see `read_checkpoint_file`."""
    f = read_checkpoint_file(path, trusted)
    return f.checkpoints, f.problems
