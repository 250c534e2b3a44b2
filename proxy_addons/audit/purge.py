"""Retention: delete whole rotated files past the retention period, leaving a signed anchor.

`purge` removes, per chain, the oldest rotated files whose every record is older than the
cut-off (never a live file, never a file after one that is kept), after writing one
``purge`` record to the admin chain that names them: each file with its SHA-256 and seq
range, and per chain the *anchor*: seq, hash and epoch of the last record removed. `verify`
then proves each purged chain from its anchor on (`verify._Walker`) and reports the purge as
a note. Anchors are cumulative: each purge record carries every chain's latest anchor, so
only the newest purge record is needed, and the admin chain's own old files may be purged
too (with their own, usually longer, cut-off).

The host cannot verify forward-sealed records (the seed is off the host), so purge checks
what it can without keys (each file a contiguous, linked run of the chain, the next file
continuing it) and refuses anything else: a damaged trail is evidence, never tidied away.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy_addons.audit.chain import chain_of, parse_line
from proxy_addons.audit.durable import fsync_dir
from proxy_addons.audit.files import is_rotated, live_name
from proxy_addons.audit.verify_epochs import Anchor
from proxy_addons.errors import AuditError


@dataclass(frozen=True, slots=True)
class FileSpan:
    """One log file as purge sees it: whose chain, which records, how old."""

    path: pathlib.Path
    worker: str
    first_seq: int
    last_seq: int
    last_hash: str
    last_epoch: int | None
    sealed: bool  # its last record is its epoch's seal
    newest: str  # the latest @timestamp in it
    sha256: str


def _span(path: pathlib.Path) -> FileSpan | None:
    """Read a (plain) log file whole; `AuditError` if it is not one clean run of a chain."""
    digest = hashlib.sha256()
    worker, first, last, prev_hash = "", 0, 0, ""
    epoch: int | None = None
    sealed, newest = False, ""
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            digest.update(raw)
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("incomplete last line")
                record = parse_line(raw[:-1].decode("utf-8"))
                chain = chain_of(record)
            except (ValueError, UnicodeDecodeError) as e:
                raise AuditError(
                    f"{path}:{n}: {e}: not purged (run 'socialgate audit verify')"
                ) from None
            linked = chain["seq"] == last + 1 and chain["prev"] == prev_hash
            if worker and (chain["worker"] != worker or not linked) and "break" not in chain:
                raise AuditError(
                    f"{path}:{n}: the chain does not continue here: not purged (run "
                    "'socialgate audit verify')"
                )
            worker = worker or chain["worker"]
            first = first or chain["seq"]
            last, prev_hash = chain["seq"], chain["hash"]
            epoch = chain.get("epoch")
            sealed = (record.get("event") or {}).get("action") == "epoch-sealed"
            stamp = record.get("@timestamp")
            if isinstance(stamp, str) and stamp > newest:
                newest = stamp
    if not worker:
        return None
    return FileSpan(path, worker, first, last, prev_hash, epoch, sealed, newest, digest.hexdigest())


@dataclass(frozen=True, slots=True)
class Plan:
    files: list[FileSpan]  # to delete, per chain oldest first
    kept: dict[str, int]  # worker -> files of its series that stay


def plan(
    logs: Sequence[pathlib.Path], before: dt.datetime, admin_before: dt.datetime | None
) -> Plan:
    """What `purge` would delete (raises `AuditError` for a trail it must not touch)."""
    cut = before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    admin_cut = (
        admin_before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if admin_before else ""
    )
    by_worker: dict[str, list[tuple[FileSpan, bool]]] = {}
    for path in logs:
        if path.name.endswith(".gz"):
            raise AuditError(f"{path}: compressed files are not purged yet; decompress it first")
        span = _span(path)
        if span is not None:
            live = not is_rotated(path)
            by_worker.setdefault(span.worker, []).append((span, live))
    chosen: list[FileSpan] = []
    kept: dict[str, int] = {}
    for worker, spans in sorted(by_worker.items()):
        spans.sort(key=lambda s: s[0].first_seq)
        admin = live_name(spans[0][0].path.name).startswith("admin-")
        limit = admin_cut if admin else cut
        taken = 0
        for i, (span, live) in enumerate(spans):
            if not limit or live or i == len(spans) - 1 or span.newest >= limit:
                break
            nxt = spans[i + 1][0]
            if nxt.first_seq != span.last_seq + 1:
                raise AuditError(
                    f"{nxt.path}: chain {worker!r} jumps from seq {span.last_seq} to "
                    f"{nxt.first_seq}: not purged (run 'socialgate audit verify')"
                )
            chosen.append(span)
            taken += 1
        kept[worker] = len(spans) - taken
    return Plan(chosen, kept)


def purge_body(p: Plan, before: dt.datetime, previous: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``socialgate.purge`` of the purge record: files and every chain's anchor."""
    chains = dict(previous)
    for span in p.files:  # oldest first: the last one of each chain is its anchor
        chains[span.worker] = {
            "seq": span.last_seq, "hash": span.last_hash, "epoch": span.last_epoch,
            "sealed": span.sealed,
        }  # fmt: skip
    return {
        "before": before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": [
            {
                "name": s.path.name,
                "worker": s.worker,
                "first_seq": s.first_seq,
                "last_seq": s.last_seq,
                "sha256": s.sha256,
            }
            for s in p.files
        ],
        "chains": chains,
    }


def delete(p: Plan) -> None:
    """Remove the planned files (after their purge record is written), fsyncing each dir."""
    dirs: set[pathlib.Path] = set()
    for span in p.files:
        try:
            os.unlink(span.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise AuditError(f"cannot delete {span.path}: {e.strerror}") from None
        dirs.add(span.path.parent)
    for d in dirs:
        fsync_dir(d)


# --- reading purge records back (verify, and the next purge) --------------------


def anchors_of(file: str, line: int, record: dict[str, Any]) -> dict[str, Anchor]:
    """The anchors a purge record sets, by worker (malformed entries are ignored)."""
    body = (record.get("socialgate") or {}).get("purge")
    chains = body.get("chains") if isinstance(body, dict) else None
    out: dict[str, Anchor] = {}
    for worker, a in (chains or {}).items():
        try:
            epoch = a.get("epoch")
            out[worker] = Anchor(
                int(a["seq"]), str(a["hash"]), None if epoch is None else int(epoch),
                bool(a.get("sealed")), f"{file}:{line}",
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return out


def latest_purge(paths: Sequence[pathlib.Path]) -> tuple[str, int, dict[str, Any]] | None:
    """The purge record with the highest seq in these (admin) files, not yet verified."""
    best: tuple[int, str, int, dict[str, Any]] | None = None
    for path in paths:
        if path.name.endswith(".gz") or not path.is_file():
            continue
        with path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                if b'"action":"purge"' not in raw:
                    continue
                try:
                    record = json.loads(raw)
                    seq = int(record["socialgate"]["chain"]["seq"])
                except (ValueError, KeyError, TypeError):
                    continue
                if best is None or seq > best[0]:
                    best = (seq, str(path), n, record)
    return None if best is None else best[1:]


def scan_purges(paths: Sequence[pathlib.Path]) -> dict[str, Anchor]:
    """Anchors of the newest purge record in ``paths`` (checked later by verify's walk)."""
    found = latest_purge(paths)
    return anchors_of(*found) if found else {}
