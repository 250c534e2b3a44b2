"""Audit file names: a live log, its rotated series, the checkpoint file beside it.

The one definition the writer, `audit verify` and `audit search | report |
stats` share, so that they never disagree about which files make up a trail.

A *live log* is the file a writer appends to, e.g. ``audit.jsonl``. Its
*series* is the live log and the files it became when rotated, beside it:

* ``audit.jsonl.20261125T100000123456Z`` (``-1``, ``-2`` … only on a clash):
  the writer's own rotation (`rotated_name`), which sorts by time;
* ``audit.jsonl.1``, ``audit.jsonl.2`` …: numbered rotation by an outside tool;
* any of those, or the live name itself, compressed: ``….gz``.

Nothing else beside it belongs to it (``audit.jsonl.key``, ``.lock``,
``.tmp``, ``.old`` …), and a rotated or compressed file names a series of
one: itself.

A folder's *trail* (what the commands read when no log is named) is the
series of every live log named ``audit.jsonl``, ``audit-<tag>.jsonl`` (another
worker's log, or a dated archive) or ``admin-audit.jsonl`` (the CLI's chain),
the tag without dots. Checkpoint files (``<stem>.checkpoints``, see
`default_checkpoints_path`) are not logs.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re

from proxy_addons.errors import AuditError
from proxy_addons.paths import DEFAULT_AUDIT_LOG

_STAMP = r"\d{8}T\d{12}Z(?:-(?P<clash>\d+))?"
# What may follow a live log's name in a member of its series (``$``: at the very end).
_MEMBER_SUFFIX = re.compile(rf"(?:\.(?:(?P<stamp>{_STAMP})|(?P<number>\d+)))?(?P<gz>\.gz)?$")
_TRAIL_LIVE = re.compile(r"(?:admin-)?audit(?:-[^.]+)?\.jsonl")


def rotated_name(live: pathlib.Path, now: dt.datetime) -> pathlib.Path:
    """``audit.jsonl`` -> ``audit.jsonl.20261125T100000123456Z`` (sorts by time; never reused)."""
    base = live.with_name(f"{live.name}.{now.astimezone(dt.UTC):%Y%m%dT%H%M%S%fZ}")
    candidate, n = base, 0
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def live_name(name: str) -> str:
    """The name of the live log whose series a file of this name belongs to."""
    m = _MEMBER_SUFFIX.search(name)
    assert m is not None  # every name ends with an empty suffix
    return name[: m.start()]


def live_of(path: pathlib.Path) -> pathlib.Path:
    """The live log of the series ``path`` belongs to (``path`` itself for a live log)."""
    return path.with_name(live_name(path.name))


def is_rotated(path: pathlib.Path) -> bool:
    """A rotated or compressed member of a series, not a live log."""
    return live_name(path.name) != path.name


def is_compressed(path: pathlib.Path) -> bool:
    return path.name.endswith(".gz")


def is_member(live: pathlib.Path, path: pathlib.Path) -> bool:
    """Whether ``path`` belongs to the series of the live log ``live``."""
    return path.parent == live.parent and live_name(path.name) == live.name


def _age_order(path: pathlib.Path) -> tuple[int, int, str, int]:
    """Oldest first: numbered files (the highest number is the oldest), then stamped ones.

    Numbered files cannot be placed in time against stamped ones by name; that
    is harmless: verify orders files by sequence number and search by time, and
    the writer reads only its own stamped files (`last_rotation`).
    """
    m = _MEMBER_SUFFIX.search(path.name)
    assert m is not None
    if m["number"] is not None:
        return (0, -int(m["number"]), "", 0)
    if m["stamp"] is not None:
        return (1, 0, m["stamp"].split("-", 1)[0], int(m["clash"] or 0))
    return (2, 0, "", 0)


def series(path: pathlib.Path) -> list[pathlib.Path]:
    """A live log and its rotated files, oldest first (the live file last, if it exists).

    A rotated or compressed file given by name is returned alone.
    """
    if is_rotated(path):
        return [path]
    found = path.parent.iterdir() if path.parent.is_dir() else iter(())
    members = [p for p in found if p != path and is_member(path, p)]
    members.sort(key=lambda p: (_age_order(p), p.name))
    return [*members, path] if path.exists() else members


def last_rotation(live: pathlib.Path) -> pathlib.Path | None:
    """The newest file the writer itself rotated ``live`` into (stamped, uncompressed)."""
    own = [p for p in series(live) if _own_rotation(p)]
    return own[-1] if own else None


def _own_rotation(path: pathlib.Path) -> bool:
    m = _MEMBER_SUFFIX.search(path.name)
    return m is not None and m["stamp"] is not None and m["gz"] is None


def trail(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every log of the trail in ``folder`` (see the module docstring), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if _TRAIL_LIVE.fullmatch(live_name(p.name)) and p.is_file()
    )


def default_logs(live: pathlib.Path = pathlib.Path(DEFAULT_AUDIT_LOG)) -> list[pathlib.Path]:
    """The trail in the folder of the default live log; `AuditError` if there is none."""
    found = trail(live.parent)
    if not found:
        raise AuditError(
            f"no audit log found in {live.parent} (looked for {live}, its rotated files and "
            "the other audit logs beside it; give log files as arguments)"
        )
    return found


def default_checkpoints_path(log: pathlib.Path) -> pathlib.Path:
    """``logs/audit.jsonl`` (or any file of its series) -> ``logs/audit.checkpoints``.

    Outside every series and the trail, so a checkpoint file is never read as a log.
    """
    return log.with_name(log.name.split(".", 1)[0] + ".checkpoints")
