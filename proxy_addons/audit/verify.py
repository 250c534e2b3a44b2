"""`verify_logs`: prove that audit logs are complete and unaltered.

Each log file belongs to one worker's chain (the worker named in its records).
Files of a worker are put in chain order by their first sequence number, then
every record is checked: canonical spelling, HMAC under the audit key, and
linkage (``seq`` one more than the previous, ``prev`` equal to its hash).
Signed checkpoints then prove how far each chain reached, which exposes a
truncated tail or a missing newest file.

Problems (damage: exit 1) name the file and line where the evidence stops
being trustworthy. Notes are incidents the chain itself accounts for: a line
torn by a crash mid-write followed by a recovery record, records abandoned
when a write failed. After a problem the check re-synchronises on the next
record, so one deleted line is one problem, not a cascade.

Keys: format 1 records (no ``chain.epoch``) verify under the static chain key (``key_path``);
format 2 records (forward-secure sealing) under the key of their epoch, derived from the
verification seed (``seed_path``), and `verify_epochs.EpochTracker` checks their epochs.
A purge (`purge.py`) leaves a verified ``purge`` record in the admin chain whose anchors say
where each purged chain continues: it is proven from there on, and the purge is a note.
"""

from __future__ import annotations

import collections
import hmac
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proxy_addons.audit.chain import GENESIS
from proxy_addons.audit.checkpoints import Checkpoint, gather_checkpoints
from proxy_addons.audit.epochs import load_seed
from proxy_addons.audit.files import live_name
from proxy_addons.audit.files import series as series  # re-exported: documented library API
from proxy_addons.audit.keys import load_public_key, load_secret
from proxy_addons.audit.purge import anchors_of, scan_purges
from proxy_addons.audit.verify_epochs import Anchor, EpochInfo, EpochTracker
from proxy_addons.audit.verify_read import Entry, Keys, entries, is_empty
from proxy_addons.audit.verify_read import head as head_of
from proxy_addons.errors import AuditError
from proxy_addons.paths import DEFAULT_KEY
from proxy_addons.problems import Problem

# A break record may link back this far into the previous segment.
_RECENT = 100_000


@dataclass
class VerifyReport:
    records: int = 0
    files: int = 0
    checkpoints: int = 0
    workers: dict[str, tuple[int, int]] = field(default_factory=dict)  # worker -> first, last seq
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    forged: int = 0  # records whose HMAC does not match (all of them: the wrong key)
    epochs: dict[str, list[EpochInfo]] = field(default_factory=dict)  # worker -> its epochs
    format1: dict[str, int] = field(default_factory=dict)  # worker -> records of format 1

    @property
    def ok(self) -> bool:
        return not self.problems


class _Walker:
    """Walks one worker's records in chain order."""

    def __init__(
        self,
        worker: str,
        report: VerifyReport,
        checkpoints: dict[int, Checkpoint],
        anchor: Anchor | None = None,
    ) -> None:
        self.worker = worker
        self.report = report
        self.checkpoints = checkpoints
        self.epochs = EpochTracker(worker, self.problem, self.note)
        self.anchor = anchor
        self.purges: list[tuple[str, int, dict[str, Any]]] = []  # verified purge records
        self.matched: set[int] = set()
        self.seq = 0  # last accepted
        self.hash = GENESIS
        self.first = 0
        self.recent: collections.OrderedDict[int, str] = collections.OrderedDict()
        self.pending_bad: tuple[str, Entry] | None = None
        self.last_where = ("", 0)
        self.skipped = 0  # records at or before the purge anchor, still present
        if anchor is not None:
            self.seq, self.hash, self.first = anchor.seq, anchor.hash, anchor.seq + 1
            self.epochs.start_at(anchor)

    def problem(self, file: str, line: int, message: str) -> None:
        self.report.problems.append(Problem(file, line, message))

    def note(self, file: str, line: int, message: str) -> None:
        self.report.notes.append(Problem(file, line, message))

    def accept(self, seq: int, hash_: str) -> None:
        self.seq, self.hash = seq, hash_
        if not self.first:
            self.first = seq
        self.recent[seq] = hash_
        self.recent.move_to_end(seq)
        while len(self.recent) > _RECENT:
            self.recent.popitem(last=False)

    def walk_file(self, path: pathlib.Path, keys: Keys) -> None:
        name = str(path)
        for entry in entries(path, keys):
            self.last_where = (name, entry.line)
            if entry.chain is None:
                self.resolve_bad(breaks=False)
                self.pending_bad = (name, entry)
                continue
            if self.anchor is not None and entry.chain["seq"] <= self.anchor.seq:
                self.skipped += 1  # purged by the anchor's record: not part of the proof
                continue
            self.report.records += 1
            self.record(name, entry, entry.chain)

    def resolve_bad(self, *, breaks: bool, at_end: bool = False) -> None:
        if self.pending_bad is None:
            return
        file, bad = self.pending_bad
        self.pending_bad = None
        if breaks:
            self.note(file, bad.line, f"damaged line ({bad.error}) followed by a recovery record")
        elif at_end and bad.torn:
            self.note(file, bad.line, "incomplete last line: the writer stopped mid-write (crash?)")
        else:
            self.problem(file, bad.line, f"not a valid audit record: {bad.error}")

    def record(self, file: str, entry: Entry, chain: dict[str, Any]) -> None:
        seq, prev, hash_ = chain["seq"], chain["prev"], chain["hash"]
        brk = chain.get("break")
        self.resolve_bad(breaks=brk is not None)
        line = entry.line
        if chain["worker"] != self.worker:
            self.problem(
                file, line, f"record of worker {chain['worker']!r} in a file of {self.worker!r}"
            )
            return
        linked = seq == self.seq + 1 and hmac.compare_digest(prev, self.hash)
        if not entry.hmac_ok:
            self.report.forged += 1
            self.problem(
                file,
                line,
                f"seq {seq}: record altered or forged (HMAC does not match; or the wrong --key)",
            )
            if linked:  # altered in place: its neighbours still link to it
                self.accept(seq, hash_)
            return
        if brk is not None and self.seq and not linked:
            self.break_record(file, line, seq, prev, brk)
        elif not self.seq and seq != 1:
            self.problem(
                file,
                line,
                f"chain of worker {self.worker!r} starts at seq {seq}: records 1-{seq - 1} missing "
                "(earlier file deleted or not given?)",
            )
        elif not self.seq and prev != GENESIS:
            self.problem(file, line, "first record does not start a chain (prev is not genesis)")
        elif self.seq and seq > self.seq + 1:
            self.problem(
                file,
                line,
                f"seq {seq} follows seq {self.seq}: "
                + (
                    f"record {self.seq + 1}"
                    if seq == self.seq + 2
                    else f"records {self.seq + 1}-{seq - 1}"
                )
                + " missing (deleted, or a file of the series missing)",
            )
        elif self.seq and seq <= self.seq:
            self.problem(
                file, line, f"seq {seq} after seq {self.seq}: records out of order or duplicated"
            )
        elif self.seq and not linked:
            self.problem(file, line, f"seq {seq}: prev does not match the hash of seq {self.seq}")
        elif brk is not None:
            self.note(file, line, f"seq {seq}: new segment ({brk.get('reason', '?')})")
        self.accept(seq, hash_)
        self.check_point(file, line, seq, hash_)
        if entry.record is not None:
            self.epochs.record(file, line, chain, entry.record)
            if (entry.record.get("event") or {}).get("action") == "purge":
                self.purges.append((file, line, entry.record))

    def break_record(self, file: str, line: int, seq: int, prev: str, brk: dict[str, Any]) -> None:
        reason = brk.get("reason", "?")
        known = self.recent.get(seq - 1)
        if known is None or not hmac.compare_digest(known, prev):
            self.problem(
                file,
                line,
                f"seq {seq}: new segment ({reason}) links to seq {seq - 1}, which is not in the "
                "log",
            )
            return
        self.note(
            file,
            line,
            f"seq {seq}: new segment ({reason}); records {seq}-{self.seq} of the failed segment "
            "were never acknowledged and are superseded",
        )
        for s in range(seq, self.seq + 1):
            self.recent.pop(s, None)
        self.epochs.superseded(self.seq - seq + 1)

    def check_point(self, file: str, line: int, seq: int, hash_: str) -> None:
        cp = self.checkpoints.get(seq)
        if cp is None:
            return
        self.matched.add(seq)
        if not hmac.compare_digest(cp.hash, hash_):
            self.problem(
                file, line, f"seq {seq} does not match signed checkpoint {cp.file}:{cp.line}"
            )

    def finish(self) -> None:
        self.resolve_bad(breaks=False, at_end=True)
        file, line = self.last_where
        for seq, cp in sorted(self.checkpoints.items()):
            if seq in self.matched or (self.anchor is not None and seq <= self.anchor.seq):
                continue  # a checkpoint of purged records proves nothing about what is left
            if seq > self.seq:
                self.problem(
                    file,
                    line,
                    f"log of worker {self.worker!r} ends at seq {self.seq}, but checkpoint "
                    f"{cp.file}:{cp.line} proves seq {seq} was written: tail truncated or newest "
                    "file missing",
                )
                break
            self.problem(
                cp.file,
                cp.line,
                f"checkpointed record seq {seq} of {self.worker!r} is not in the log",
            )
        if self.seq:
            self.report.workers[self.worker] = (self.first, self.seq)
        self.epochs.finish()
        self.report.epochs[self.worker] = self.epochs.epochs
        if self.epochs.format1:
            self.report.format1[self.worker] = self.epochs.format1
        for e in self.epochs.epochs:
            if e.late:
                self.note(
                    file, 0,
                    f"worker {self.worker!r}: epoch {e.n} ({e.records} records, {e.first} to "
                    f"{e.last}) was sealed late, at a restart after an unclean stop (a crash): "
                    "its records were not sealed while the proxy was down",
                )  # fmt: skip
        if self.anchor is not None:
            still = f" ({self.skipped} purged records still present, skipped)"
            self.note(
                self.anchor.where, 0,
                f"worker {self.worker!r}: records up to seq {self.anchor.seq} were purged "
                f"(retention); the chain is proven from seq {self.anchor.seq + 1}"
                + (still if self.skipped else ""),
            )  # fmt: skip


def _load_checkpoints(
    paths: Sequence[pathlib.Path], public_key_path: pathlib.Path | None, report: VerifyReport
) -> dict[str, dict[int, Checkpoint]]:
    # Checkpoint files and shipped copies (syslog files) together: `gather_checkpoints`.
    trusted = load_public_key(public_key_path) if public_key_path else None
    try:
        gathered = gather_checkpoints(paths, trusted)
    except OSError as e:
        raise AuditError(f"cannot read checkpoints {e.filename}: {e.strerror}") from None
    report.problems.extend(gathered.problems)
    report.notes.extend(gathered.notes)
    report.checkpoints += gathered.count
    if paths and trusted is None and report.checkpoints:
        report.notes.append(
            Problem(
                str(paths[0]),
                0,
                "signatures checked against the key in each checkpoint; "
                "give the trusted public key (--pubkey) for proof of origin",
            )
        )
    return gathered.by_worker


def _is_admin(path: pathlib.Path) -> bool:
    return live_name(path.name).startswith("admin-")


def verify_logs(
    paths: Sequence[pathlib.Path],
    *,
    key_path: pathlib.Path | None = None,
    checkpoints_path: pathlib.Path | Sequence[pathlib.Path] | None = None,
    public_key_path: pathlib.Path | None = None,
    seed_path: pathlib.Path | None = None,
) -> VerifyReport:
    """Check every given log file (any mix of workers and rotated files).

    ``key_path``: the static chain key (format 1; default keys/audit-hmac.key when no seed
    is given); ``seed_path``: the verification seed (format 2, forward-secure sealing).
    Raises `AuditError` for bad input (no key, unreadable file): the caller exits 2.
    """
    seed = load_seed(seed_path) if seed_path is not None else None
    key = (
        load_secret(key_path or pathlib.Path(DEFAULT_KEY), "audit key")
        if key_path is not None or seed is None
        else None
    )
    keys = Keys(key, seed)
    report = VerifyReport()
    if checkpoints_path is None:
        cp_paths: list[pathlib.Path] = []
    elif isinstance(checkpoints_path, pathlib.Path):
        cp_paths = [checkpoints_path]
    else:
        cp_paths = list(checkpoints_path)
    checkpoints = _load_checkpoints(cp_paths, public_key_path, report)

    unique: dict[pathlib.Path, pathlib.Path] = {}
    for p in paths:
        unique.setdefault(p.resolve(), p)
    series: dict[str, list[tuple[int, pathlib.Path]]] = {}
    for path in unique.values():
        try:
            head = head_of(path)
        except OSError as e:
            raise AuditError(f"cannot read audit log {path}: {e.strerror}") from None
        report.files += 1
        if head is None:
            empty = is_empty(path)
            (report.notes if empty else report.problems).append(
                Problem(str(path), 0, "empty file" if empty else "no audit record in this file")
            )
            continue
        series.setdefault(head[0], []).append((head[1], path))

    # The admin chains first: their verified purge records anchor the chains they purged.
    admin = {w for w, files in series.items() if any(_is_admin(p) for _, p in files)}
    candidates = scan_purges([p for w in admin for _, p in series[w]])
    anchors: dict[str, Anchor] = {}
    for worker in sorted(series, key=lambda w: (w not in admin, w)):
        anchor = candidates.get(worker) if worker in admin else anchors.get(worker)
        walker = _Walker(worker, report, checkpoints.get(worker, {}), anchor)
        for _, path in sorted(series[worker], key=lambda item: item[0]):
            walker.walk_file(path, keys)
        walker.finish()
        if walker.purges and worker in admin:
            anchors.update(anchors_of(*walker.purges[-1]))
        if anchor is not None and worker in admin and anchors.get(worker) != anchor:
            report.problems.append(
                Problem(anchor.where, 0, f"purge record anchoring {worker!r} does not verify")
            )
    for worker in sorted(set(checkpoints) - set(series)):
        report.notes.append(
            Problem(
                str(cp_paths[0]),
                0,
                f"checkpoints of worker {worker!r} not checked: no log of it given",
            )
        )
    return report
