"""Exemption edits on the policy file: grant, renew, revoke.

Each edit is a ruamel.yaml round trip (comments, order and layout kept),
held under a lock against a second admin, checked twice before anything is
written (the result must validate, and must differ from the old policy by
exactly the intended exemption change), then written atomically: temp file,
fsync, rename, fsync of the directory. A reader (the proxy's watcher) sees
either the old or the new file, never a half-written one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import io
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from proxy_addons.errors import ConfigError, PolicyError, SocialgateError
from proxy_addons.hosts import normalise_host
from proxy_addons.policy.diff import PolicyDiff, diff_policies, exemption_changes
from proxy_addons.policy.load import MAX_POLICY_BYTES, parse_policy_text
from proxy_addons.policy.model import Access, Exemption, Policy

LOCK_TIMEOUT = 30.0  # seconds to wait for another admin's edit to finish
ID_PREFIX = "EX"
_ID = re.compile(rf"^{ID_PREFIX}-(\d{{4}})-(\d+)$")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class EditRefused(ConfigError):
    """The requested change is not allowed (bad value, unknown id, already revoked …)."""


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    days: tuple[str, ...]  # mon … sun
    start: str  # HH:MM
    end: str  # HH:MM
    timezone: str | None = None  # None: the policy's time zone


@dataclass(frozen=True, slots=True)
class GrantSpec:
    user: str | None
    group: str | None
    sites: tuple[str, ...]
    access: Access
    business_case: str
    approved_by: str
    expires: dt.date
    ticket: str | None = None
    schedule: ScheduleSpec | None = None


@dataclass(frozen=True, slots=True)
class EditResult:
    action: str  # granted | renewed | revoked
    exemption_id: str
    before: Exemption | None  # None for a grant
    after: Exemption
    policy: Policy  # as written
    previous_sha256: str


Commit = Callable[[EditResult], None]


# -- dates -------------------------------------------------------------------


def today_in(zones: list[ZoneInfo], now: dt.datetime | None = None) -> dt.date:
    """The earliest calendar date among ``zones`` (and UTC) at ``now``.

    Dates written by the CLI (granted, revoked) must be in force at once
    wherever the proxy reads them: the earliest "today" is never in the future.
    """
    now = now or dt.datetime.now(dt.UTC)
    return min(now.astimezone(z).date() for z in [ZoneInfo("UTC"), *zones])


def _check_expiry(policy: Policy, granted: dt.date, expires: dt.date, today: dt.date) -> None:
    if expires < today:
        raise EditRefused(f"--expires {expires}: the date is in the past")
    if expires < granted:
        raise EditRefused(f"--expires {expires}: before the first valid day {granted}")
    days = (expires - granted).days + 1
    if days > policy.max_exemption_days:
        last = granted + dt.timedelta(days=policy.max_exemption_days - 1)
        raise EditRefused(
            f"--expires {expires}: {days} days from {granted} is more than the policy's "
            f"max_exemption_days ({policy.max_exemption_days}); the latest allowed is {last}"
        )


def _required(value: str | None, option: str) -> str:
    if value is None or not value.strip():
        raise EditRefused(f"{option} must not be empty")
    return value.strip()


# -- YAML round trip ---------------------------------------------------------


def _plain_or_quoted(text: str) -> str:
    """``text`` as a scalar the policy loader (YAML 1.1) reads back unchanged.

    ruamel writes YAML 1.2, where ``no``, ``08:00`` or ``0123`` are plain
    strings; the loader would read them as a boolean or numbers.
    """
    try:
        same = yaml.safe_load(text) == text and "\n" not in text
    except yaml.YAMLError:
        same = False
    return text if same else DoubleQuotedScalarString(text)


def _flow(items: list[str]) -> CommentedSeq:
    seq = CommentedSeq([_plain_or_quoted(i) for i in items])
    seq.fa.set_flow_style()
    return seq


def _mapping_indent(text: str) -> int:
    """The indent of the first nested mapping key (default 2)."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not line or line[0] in " #-" or not line.split("#", 1)[0].rstrip().endswith(":"):
            continue
        for nxt in lines[i + 1 :]:
            stripped = nxt.lstrip()
            if not stripped or stripped.startswith("#"):
                continue
            indent = len(nxt) - len(stripped)
            if indent and not stripped.startswith("-"):
                return indent
            break
    return 2


def _yaml_for(text: str) -> YAML:
    y = YAML()  # round trip
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap long lines
    mapping = _mapping_indent(text)
    _, seq_indent, offset = load_yaml_guess_indent(text)
    if offset is None or not seq_indent:
        # No block list yet: indent the first one like the shipped policy does.
        seq_indent, offset = mapping + 2, mapping
    y.indent(mapping=mapping, sequence=seq_indent, offset=offset)
    return y


def _has_children(node: Any) -> bool:
    return (
        isinstance(node, CommentedMap | CommentedSeq) and len(node) > 0 and not node.fa.flow_style()
    )


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """(container, key) of the last scalar line of ``node``: where ruamel keeps
    the comments that follow it."""
    last = None
    while _has_children(node):
        key = list(node.keys())[-1] if isinstance(node, CommentedMap) else len(node) - 1
        last = (node, key)
        node = node[key]
    return last


def _slot_pos(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _take_trailing_comments(node: Any) -> str:
    """Detach the comment lines after ``node`` (they introduce what follows it).

    ruamel attaches "# Investigators" above the next list item to the last
    line of the previous one; something appended there must go above them.
    """
    slot = _last_slot(node)
    if slot is None:
        return ""
    container, key = slot
    entry = container.ca.items.get(key)
    pos = _slot_pos(container)
    if not entry or len(entry) <= pos or entry[pos] is None:
        return ""
    value: str = entry[pos].value
    nl = value.find("\n")
    if nl == -1 or nl == len(value) - 1:
        return ""
    head, rest = value[: nl + 1], value[nl + 1 :]
    if head.strip():
        entry[pos].value = head
    else:
        entry[pos] = None
    return rest


def _put_trailing_comments(node: Any, rest: str) -> None:
    if not rest:
        return
    slot = _last_slot(node)
    assert slot is not None
    container, key = slot
    pos = _slot_pos(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    if entry[pos] is None:
        entry[pos] = CommentToken("\n" + rest, CommentMark(0), None)
    else:
        entry[pos].value += rest


def _append_key(mapping: CommentedMap, key: str, value: Any) -> None:
    rest = _take_trailing_comments(mapping)
    mapping[key] = value
    _put_trailing_comments(mapping, rest)


def _append_item(seq: CommentedSeq, value: Any) -> None:
    rest = _take_trailing_comments(seq)
    seq.append(value)
    _put_trailing_comments(seq, rest)


class _Document:
    """The policy text, its round-trip tree, and how to write it back."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.yaml = _yaml_for(text)
        try:
            self.root = self.yaml.load(text)
        except YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = int(mark.line) + 1 if mark is not None else 0
            raise PolicyError([(path, line, f"cannot edit: {e}")]) from None
        if not isinstance(self.root, CommentedMap):
            raise PolicyError([(path, 1, "cannot edit: the top level is not a mapping")])

    def exemptions(self) -> CommentedSeq:
        seq = self.root.get("exemptions")
        if seq is None:
            seq = CommentedSeq()
            if "exemptions" in self.root:
                self.root["exemptions"] = seq
            else:
                _append_key(self.root, "exemptions", seq)
        if not isinstance(seq, CommentedSeq):
            raise PolicyError([(self.path, 0, "cannot edit: 'exemptions' is not a list")])
        if seq.fa.flow_style():
            seq.fa.set_block_style()  # `exemptions: []` grows into a block list
        return seq

    def entry(self, exemption_id: str) -> CommentedMap:
        for item in self.exemptions():
            if isinstance(item, CommentedMap) and item.get("id") == exemption_id:
                return item
        raise EditRefused(f"no exemption {exemption_id!r} in {self.path}")

    def dump(self) -> str:
        buf = io.StringIO()
        self.yaml.dump(self.root, buf)
        return buf.getvalue()


# -- locking and writing -----------------------------------------------------


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the policy's lock file (a sibling ``<name>.lock``, never deleted).

    The lock file is never removed: removing it would let a waiting admin lock
    a file that a third one has already replaced.
    """
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o664)
    except OSError as e:
        raise PolicyError([(str(lock), 0, f"cannot open lock file: {e.strerror}")]) from None
    try:
        deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PolicyError(
                        [(str(path), 0, f"another admin is editing it (lock {lock}); try again")]
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename."""
    directory = path.parent
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if old is not None:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PolicyError([(str(path), 0, f"cannot write: {e.strerror or e}")]) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read(path: Path, shown: str) -> tuple[str, bytes]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PolicyError([(shown, 0, f"cannot read policy file: {e.strerror or e}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError([(shown, 0, "policy file is too large to edit")])
    try:
        return data.decode("utf-8"), data
    except UnicodeDecodeError:
        raise PolicyError([(shown, 0, "policy file is not UTF-8 text")]) from None


# -- the edit transaction ----------------------------------------------------

Change = Callable[[_Document, Policy], tuple[str, "Expect"]]


@dataclass(frozen=True, slots=True)
class Expect:
    """What the edit must change, and nothing else."""

    action: str
    diff: PolicyDiff
    check: Callable[[Exemption | None, Exemption], list[str]]


def _edit(path: str | Path, change: Change, commit: Commit | None) -> EditResult:
    shown = str(path)
    # Edit the real file behind a symlink, so the link stays a link.
    real = Path(os.path.realpath(path))
    with locked(real):
        text, _ = _read(real, shown)
        old = parse_policy_text(text, shown)
        doc = _Document(text, shown)
        exemption_id, expect = change(doc, old)
        new_text = doc.dump()
        try:
            new = parse_policy_text(new_text, shown)
        except PolicyError as e:
            raise PolicyError(
                [
                    (p, n, f"refused, the edited policy would be invalid: {m}")
                    for p, n, m in e.errors
                ]
            ) from None
        before = old.exemption(exemption_id) if expect.action != "granted" else None
        after = new.exemption(exemption_id)
        assert after is not None
        problems = expect.check(before, after)
        if diff_policies(old, new, domains=False) != expect.diff or problems:
            # The round trip changed something else: never write that.
            raise SocialgateError(
                f"{shown}: refused, the edit would change more than {exemption_id}"
                + (f" ({'; '.join(problems)})" if problems else "")
            )
        atomic_write(real, new_text.encode("utf-8"))
        result = EditResult(expect.action, exemption_id, before, after, new, old.sha256)
        if commit is not None:
            try:
                commit(result)
            except BaseException:
                # Unrecorded changes must not stay in force: put the old file back.
                atomic_write(real, text.encode("utf-8"))
                raise
        return result


def _same(obj: object, **fields: object) -> list[str]:
    return [
        f"{k} is {getattr(obj, k)!r}, expected {v!r}"
        for k, v in fields.items()
        if getattr(obj, k) != v
    ]


def next_id(policy: Policy, year: int) -> str:
    """``EX-<year>-<NNN>``: one more than the highest number used this year."""
    highest = 0
    for e in policy.exemptions:
        m = _ID.match(e.id)
        if m and int(m.group(1)) == year:
            highest = max(highest, int(m.group(2)))
    return f"{ID_PREFIX}-{year}-{highest + 1:03d}"


def grant(
    path: str | Path,
    spec: GrantSpec,
    *,
    now: dt.datetime | None = None,
    commit: Commit | None = None,
) -> EditResult:
    """Add an exemption with the next free id; returns what was written."""
    if (spec.user is None) == (spec.group is None):
        raise EditRefused("give exactly one of --user or --group")
    business_case = _required(spec.business_case, "--business-case")
    approved_by = _required(spec.approved_by, "--approved-by")
    if not spec.sites:
        raise EditRefused("--sites must name at least one site or category")

    def change(doc: _Document, policy: Policy) -> tuple[str, Expect]:
        zones = [policy.timezone]
        if spec.schedule is not None and spec.schedule.timezone:
            try:
                zones.append(ZoneInfo(spec.schedule.timezone))
            except (ValueError, OSError, KeyError):
                raise EditRefused(
                    f"--schedule: unknown time zone {spec.schedule.timezone!r}"
                ) from None
        if spec.group is not None and spec.group not in policy.groups:
            known = ", ".join(policy.groups) or "none"
            raise EditRefused(f"--group {spec.group!r}: no such group in the policy ({known})")
        today = today_in(zones, now)
        _check_expiry(policy, today, spec.expires, today)
        exemption_id = next_id(policy, today.year)
        entry = CommentedMap()
        entry["id"] = exemption_id
        if spec.user is not None:
            entry["user"] = _plain_or_quoted(spec.user)
        else:
            entry["group"] = _plain_or_quoted(spec.group or "")
        entry["sites"] = _flow(
            [s if s in policy.categories else (normalise_host(s) or s) for s in spec.sites]
        )
        entry["access"] = str(spec.access)
        entry["business_case"] = _plain_or_quoted(business_case)
        entry["approved_by"] = _plain_or_quoted(approved_by)
        if spec.ticket:
            entry["ticket"] = _plain_or_quoted(spec.ticket.strip())
        entry["granted"] = today
        entry["expires"] = spec.expires
        if spec.schedule is not None:
            sched = CommentedMap()
            sched["days"] = _flow(list(spec.schedule.days))
            sched["from"] = DoubleQuotedScalarString(spec.schedule.start)
            sched["to"] = DoubleQuotedScalarString(spec.schedule.end)
            if spec.schedule.timezone:
                sched["timezone"] = _plain_or_quoted(spec.schedule.timezone)
            entry["schedule"] = sched
        _append_item(doc.exemptions(), entry)

        def check(_: Exemption | None, after: Exemption) -> list[str]:
            return _same(
                after,
                user=spec.user,
                group=spec.group,
                access=spec.access,
                business_case=business_case,
                approved_by=approved_by,
                granted=today,
                expires=spec.expires,
                revoked=None,
            )

        return exemption_id, Expect("granted", PolicyDiff(exemptions_added=(exemption_id,)), check)

    return _edit(path, change, commit)


def renew(
    path: str | Path,
    exemption_id: str,
    *,
    expires: dt.date,
    approved_by: str,
    now: dt.datetime | None = None,
    commit: Commit | None = None,
) -> EditResult:
    """Extend an exemption to ``expires`` under a new approval.

    The approval period restarts: ``granted`` becomes today (unless the
    exemption has not started yet), so ``max_exemption_days`` counts from the
    renewal. The previous dates and approver go into the audit record.
    """
    approver = _required(approved_by, "--approved-by")

    def change(doc: _Document, policy: Policy) -> tuple[str, Expect]:
        before = policy.exemption(exemption_id)
        if before is None:
            raise EditRefused(f"no exemption {exemption_id!r} in {doc.path}")
        if before.revoked is not None:
            r = before.revoked
            raise EditRefused(
                f"{exemption_id} was revoked on {r.date} by {r.by}; grant a new exemption instead"
            )
        zones = [policy.timezone]
        if before.schedule is not None:
            zones.append(before.schedule.timezone)
        today = today_in(zones, now)
        granted = max(before.granted, today)
        _check_expiry(policy, granted, expires, today)
        expected = dataclasses.replace(
            before, granted=granted, expires=expires, approved_by=approver
        )
        fields = tuple(exemption_changes(before, expected))
        if not fields:
            raise EditRefused(f"{exemption_id} already expires on {expires}: nothing to change")
        entry = doc.entry(exemption_id)
        if granted != before.granted:
            entry["granted"] = granted
        entry["expires"] = expires
        entry["approved_by"] = _plain_or_quoted(approver)
        diff = PolicyDiff(exemptions_changed=((exemption_id, fields),))

        def check(_: Exemption | None, after: Exemption) -> list[str]:
            return exemption_changes(dataclasses.replace(expected, line=after.line), after)

        return exemption_id, Expect("renewed", diff, check)

    return _edit(path, change, commit)


def revoke(
    path: str | Path,
    exemption_id: str,
    *,
    by: str,
    reason: str,
    now: dt.datetime | None = None,
    commit: Commit | None = None,
) -> EditResult:
    """Mark an exemption revoked from today; the entry stays in the file as evidence."""
    who = _required(by, "--by")
    why = _required(reason, "--reason")

    def change(doc: _Document, policy: Policy) -> tuple[str, Expect]:
        before = policy.exemption(exemption_id)
        if before is None:
            raise EditRefused(f"no exemption {exemption_id!r} in {doc.path}")
        if before.revoked is not None:
            r = before.revoked
            raise EditRefused(f"{exemption_id} was already revoked on {r.date} by {r.by}")
        zones = [policy.timezone]
        if before.schedule is not None:
            zones.append(before.schedule.timezone)
        today = today_in(zones, now)
        revoked = CommentedMap()
        revoked["date"] = today
        revoked["by"] = _plain_or_quoted(who)
        revoked["reason"] = _plain_or_quoted(why)
        _append_key(doc.entry(exemption_id), "revoked", revoked)

        def check(_: Exemption | None, after: Exemption) -> list[str]:
            if after.revoked is None:
                return ["the entry is not revoked"]
            return _same(after.revoked, date=today, by=who, reason=why)

        diff = PolicyDiff(exemptions_changed=((exemption_id, ("revoked",)),))
        return exemption_id, Expect("revoked", diff, check)

    return _edit(path, change, commit)


def parse_days(text: str) -> tuple[str, ...]:
    """``mon-fri``, ``mon,wed,fri`` or ``sat-sun`` → the day names, in week order."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise EditRefused(f"--schedule: {part!r} is not a day or range like mon-fri")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        i = a
        while True:
            days.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return tuple(DAY_NAMES[i] for i in sorted(days))


_CLOCK = re.compile(r"^([01]?[0-9]|2[0-4]):[0-5][0-9]$")


def parse_schedule(text: str) -> ScheduleSpec:
    """``DAYS HH:MM-HH:MM [TIMEZONE]``, e.g. ``mon-fri 08:00-18:00 Europe/London``."""
    parts = text.split()
    if len(parts) not in (2, 3) or parts[1].count("-") != 1:
        raise EditRefused(
            f"--schedule {text!r}: expected DAYS HH:MM-HH:MM [TIMEZONE], "
            "e.g. 'mon-fri 08:00-18:00 Europe/London'"
        )
    start, end = parts[1].split("-")
    for t in (start, end):
        if not _CLOCK.match(t):
            raise EditRefused(f"--schedule {text!r}: {t!r} is not a time HH:MM")
    start, end = (t.zfill(5) for t in (start, end))
    return ScheduleSpec(parse_days(parts[0]), start, end, parts[2] if len(parts) == 3 else None)
