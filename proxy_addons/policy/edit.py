"""Exemption edits on the policy file: grant, renew, revoke.

Each edit is a ruamel.yaml round trip (`proxy_addons.policy.roundtrip`:
comments, order and layout kept), held under a lock against a second admin,
checked twice before anything is written (the result must validate, and must
differ from the old policy by exactly the intended exemption change), then
written atomically (`proxy_addons.fileio`). A reader (the proxy's watcher)
sees either the old or the new file, never a half-written one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from ruamel.yaml.comments import CommentedMap

from proxy_addons.errors import EditRefused, PolicyError, SocialgateError
from proxy_addons.fileio import flock_exclusive, fsync_directory, replace_file
from proxy_addons.hosts import normalise_host
from proxy_addons.policy.diff import PolicyDiff, diff_policies, exemption_changes
from proxy_addons.policy.edit_rules import (
    check_expiry,
    check_sites,
    mismatches,
    next_id,
    required,
    today_for,
    today_in,
    unrevoked,
)
from proxy_addons.policy.load import parse_policy_text
from proxy_addons.policy.model import Access, Exemption, Policy
from proxy_addons.policy.policyfile import read_policy_file
from proxy_addons.policy.roundtrip import (
    Document,
    append_item,
    append_key,
    flow,
    plain_or_quoted,
    quoted,
)
from proxy_addons.policy.schedule import ScheduleSpec

LOCK_TIMEOUT = 30.0  # seconds to wait for another admin's edit to finish


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
        if not flock_exclusive(fd, LOCK_TIMEOUT if timeout is None else timeout):
            raise PolicyError(
                [(str(path), 0, f"another admin is editing it (lock {lock}); try again")]
            )
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file in the same directory, fsync, rename."""
    try:
        replace_file(path, data)
    except OSError as e:
        raise PolicyError([(str(path), 0, f"cannot write: {e.strerror or e}")]) from None
    fsync_directory(path.parent)


# -- the edit transaction ----------------------------------------------------

Change = Callable[[Document, Policy], tuple[str, "Expect"]]


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
        text, _ = read_policy_file(real, shown)
        old = parse_policy_text(text, shown)
        doc = Document(text, shown)
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


# -- the edits ---------------------------------------------------------------


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
    business_case = required(spec.business_case, "--business-case")
    approved_by = required(spec.approved_by, "--approved-by")
    if not spec.sites:
        raise EditRefused("--sites must name at least one site or category")

    def change(doc: Document, policy: Policy) -> tuple[str, Expect]:
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
        check_sites(policy, spec.sites)
        today = today_in(zones, now)
        check_expiry(policy, today, spec.expires, today)
        exemption_id = next_id(policy, today.year)
        entry = CommentedMap()
        entry["id"] = exemption_id
        if spec.user is not None:
            entry["user"] = plain_or_quoted(spec.user)
        else:
            entry["group"] = plain_or_quoted(spec.group or "")
        entry["sites"] = flow(
            [s if s in policy.categories else (normalise_host(s) or s) for s in spec.sites]
        )
        entry["access"] = str(spec.access)
        entry["business_case"] = plain_or_quoted(business_case)
        entry["approved_by"] = plain_or_quoted(approved_by)
        if spec.ticket:
            entry["ticket"] = plain_or_quoted(spec.ticket.strip())
        entry["granted"] = today
        entry["expires"] = spec.expires
        if spec.schedule is not None:
            sched = CommentedMap()
            sched["days"] = flow(list(spec.schedule.days))
            sched["from"] = quoted(spec.schedule.start)
            sched["to"] = quoted(spec.schedule.end)
            if spec.schedule.timezone:
                sched["timezone"] = plain_or_quoted(spec.schedule.timezone)
            entry["schedule"] = sched
        append_item(doc.exemptions(), entry)

        def check(_: Exemption | None, after: Exemption) -> list[str]:
            return mismatches(
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
    approver = required(approved_by, "--approved-by")

    def change(doc: Document, policy: Policy) -> tuple[str, Expect]:
        before = unrevoked(
            policy,
            exemption_id,
            doc.path,
            "{id} was revoked on {date} by {by}; grant a new exemption instead",
        )
        today = today_for(policy, before, now)
        granted = max(before.granted, today)
        check_expiry(policy, granted, expires, today)
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
        entry["approved_by"] = plain_or_quoted(approver)
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
    who = required(by, "--by")
    why = required(reason, "--reason")

    def change(doc: Document, policy: Policy) -> tuple[str, Expect]:
        before = unrevoked(
            policy, exemption_id, doc.path, "{id} was already revoked on {date} by {by}"
        )
        today = today_for(policy, before, now)
        revoked = CommentedMap()
        revoked["date"] = today
        revoked["by"] = plain_or_quoted(who)
        revoked["reason"] = plain_or_quoted(why)
        append_key(doc.entry(exemption_id), "revoked", revoked)

        def check(_: Exemption | None, after: Exemption) -> list[str]:
            if after.revoked is None:
                return ["the entry is not revoked"]
            return mismatches(after.revoked, date=today, by=who, reason=why)

        diff = PolicyDiff(exemptions_changed=((exemption_id, ("revoked",)),))
        return exemption_id, Expect("revoked", diff, check)

    return _edit(path, change, commit)
