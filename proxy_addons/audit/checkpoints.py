"""Signed checkpoints: Ed25519 signatures over a worker's chain head.

One JSON line per checkpoint, in a file apart from the log that is only ever
appended to (so it can be shipped off the host as it grows):

    {"@timestamp": ..., "worker": w, "n": 7, "seq": 7000, "hash": <chain hash of seq>,
     "file": "audit.jsonl", "public_key": <hex>, "signature": <hex>}

``n`` counts a worker's checkpoints (1, 2, 3 ...); the signature covers the
canonical form of everything else. A checkpoint proves the chain reached
``seq`` with that hash, so a log that ends earlier was truncated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
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


def append_checkpoint(path: pathlib.Path, body: dict[str, Any]) -> None:
    """Append one signed checkpoint and fsync it (raises OSError)."""
    data = (canonical(body) + "\n").encode("utf-8")
    with _locked_append(path) as fd:
        write_all(fd, data)
        os.fsync(fd)


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


def read_checkpoints(
    path: pathlib.Path, trusted: Ed25519PublicKey | None
) -> tuple[list[Checkpoint], list[tuple[int, str]]]:
    """Parse a checkpoint file: (checkpoints, [(line, problem)]).

    Without a ``trusted`` public key each checkpoint is checked against the key
    it carries, and `verify` requires one key per worker.
    """
    out: list[Checkpoint] = []
    problems: list[tuple[int, str]] = []
    with path.open(encoding="utf-8", errors="replace", newline="\n") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith("\n"):
                problems.append((lineno, "torn last checkpoint line"))
                continue
            try:
                body = parse_line(raw[:-1])
                worker, n, seq = body["worker"], body["n"], body["seq"]
                hash_, pub = body["hash"], body["public_key"]
                if not (isinstance(worker, str) and isinstance(n, int) and isinstance(seq, int)):
                    raise ValueError("bad field types")
                key = trusted or Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub))
            except (ValueError, KeyError, TypeError) as e:
                problems.append((lineno, f"not a checkpoint: {e}"))
                continue
            out.append(
                Checkpoint(
                    str(path),
                    lineno,
                    worker,
                    n,
                    seq,
                    str(hash_),
                    str(pub),
                    signature_valid(body, key),
                )
            )
    return out, problems
