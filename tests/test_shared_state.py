"""Reminder state shared by the workers of a host (a SQLite file), and the desk's failures."""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from collections.abc import Iterator

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons

from proxy_addons.addons.reminder import SharedState
from proxy_addons.errors import StateUnavailable
from proxy_addons.reminder import Pending, Reminders
from proxy_addons.shared_state import MAX_PENDING_PER_USER, SharedReminders
from tests.support.gate_hooks import Parts, parts, policy_file, run, social_flow

__all__ = ["parts", "policy_file"]  # fixtures

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(hours=24)


@pytest.fixture
def workers(tmp_path: pathlib.Path) -> Iterator[tuple[SharedReminders, SharedReminders]]:
    """Two workers' views of one shared file."""
    a = SharedReminders(tmp_path / "state.db")
    b = SharedReminders(tmp_path / "state.db")
    yield a, b
    a.close()
    b.close()


def test_acknowledgement_counts_on_every_worker(
    workers: tuple[SharedReminders, SharedReminders],
) -> None:
    """Acknowledged on one worker: the reminder is not due on the other."""
    a, b = workers
    assert b.due("alice", DAY, NOW)
    nonce = a.issue("alice", "SG-REF", NOW)
    assert b.acknowledge("alice", nonce, NOW) == Pending("alice", NOW, "SG-REF")
    assert not a.due("alice", DAY, NOW + DAY / 2)
    assert b.due("alice", DAY, NOW + DAY)


def test_nonce_is_redeemed_once_across_workers(
    workers: tuple[SharedReminders, SharedReminders],
) -> None:
    """A nonce issued on one worker is taken once, on any worker."""
    a, b = workers
    nonce = a.issue("alice", "SG-REF", NOW)
    assert b.acknowledge("alice", nonce, NOW) is not None
    assert a.acknowledge("alice", nonce, NOW) is None
    assert b.acknowledge("alice", nonce, NOW) is None


@pytest.mark.parametrize(
    ("user", "later"),
    [
        ("mallory", dt.timedelta(0)),  # not the user's nonce
        ("alice", dt.timedelta(hours=1, seconds=1)),  # expired
    ],
)
def test_nonce_refused(
    workers: tuple[SharedReminders, SharedReminders], user: str, later: dt.timedelta
) -> None:
    """Another user's or an expired nonce acknowledges nothing."""
    a, b = workers
    nonce = a.issue("alice", "SG-REF", NOW)
    assert b.acknowledge(user, nonce, NOW + later) is None
    assert a.due(user, DAY, NOW + later)


def test_someone_elses_attempt_leaves_the_nonce(
    workers: tuple[SharedReminders, SharedReminders],
) -> None:
    """A wrong user's attempt does not use up the owner's nonce."""
    a, b = workers
    nonce = a.issue("alice", "SG-REF", NOW)
    b.acknowledge("mallory", nonce, NOW)
    assert a.acknowledge("alice", nonce, NOW) is not None


def test_withdraw_undoes_one_acknowledgement(
    workers: tuple[SharedReminders, SharedReminders],
) -> None:
    """Withdrawing (the record failed) makes the reminder due again on every worker."""
    a, b = workers
    a.acknowledge("alice", a.issue("alice", "SG-REF", NOW), NOW)
    a.withdraw("alice", NOW)
    assert b.due("alice", DAY, NOW)


def test_pending_nonces_per_user_are_bounded(
    workers: tuple[SharedReminders, SharedReminders],
) -> None:
    """Reloading the reminder page keeps only the newest nonces of the user."""
    a, _ = workers
    nonces = [
        a.issue("alice", "SG-REF", NOW + dt.timedelta(seconds=i))
        for i in range(MAX_PENDING_PER_USER + 5)
    ]
    (count,) = a.db.execute("SELECT count(*) FROM nonces").fetchone()
    assert count == MAX_PENDING_PER_USER
    assert a.acknowledge("alice", nonces[0], NOW) is None
    assert a.acknowledge("alice", nonces[-1], NOW) is not None


def test_file_is_owner_only(tmp_path: pathlib.Path) -> None:
    """The file holds live nonces: created readable by its owner only."""
    SharedReminders(tmp_path / "state.db").close()
    assert (tmp_path / "state.db").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/state.db", "does not exist"),
        (".", "not a regular file"),
        ("text.db", "not a database"),
    ],
)
def test_bad_path_is_refused(tmp_path: pathlib.Path, name: str, message: str) -> None:
    """A path that cannot hold the store is refused; nothing is created."""
    (tmp_path / "text.db").write_text("not sqlite at all, but long enough to be a header\n" * 4)
    with pytest.raises(StateUnavailable, match=message):
        SharedReminders(tmp_path / name)
    assert not (tmp_path / "missing").exists()
    assert (tmp_path / "text.db").read_text().startswith("not sqlite")


def test_option_opens_the_file(tmp_path: pathlib.Path, parts: Parts) -> None:
    """``socialgate_shared_state`` puts the desk's state in the file, created if absent."""
    g, _, _ = parts
    addon = SharedState(g.reminder)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, socialgate_shared_state=str(tmp_path / "state.db"))
        assert isinstance(g.reminder.reminders, SharedReminders)
        tctx.configure(addon, socialgate_shared_state="")
        assert isinstance(g.reminder.reminders, Reminders)
    assert (tmp_path / "state.db").exists()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("missing/state.db", "directory .* does not exist"),
        ("relative.db", "must be an absolute path"),
    ],
)
def test_option_names_a_bad_path(
    tmp_path: pathlib.Path, parts: Parts, monkeypatch: pytest.MonkeyPatch, bad: str, message: str
) -> None:
    """A bad path is an OptionsError naming the option and the path; nothing is created."""
    monkeypatch.chdir(tmp_path)
    g, _, _ = parts
    addon = SharedState(g.reminder)
    value = str(tmp_path / bad) if "/" in bad else bad
    with (
        taddons.context(addon) as tctx,
        pytest.raises(
            exceptions.OptionsError, match=rf"socialgate_shared_state={value}: {message}"
        ),
    ):
        tctx.configure(addon, socialgate_shared_state=value)
    assert list(tmp_path.iterdir()) == []


def test_default_creates_nothing(tmp_path: pathlib.Path, parts: Parts) -> None:
    """By default the state stays in memory: no file anywhere."""
    g, _, _ = parts
    with taddons.context(SharedState(g.reminder)):
        assert isinstance(g.reminder.reminders, Reminders)


class Broken(Reminders):
    """A shared file that has gone away (disk error, removed, locked for too long)."""

    def _fail(self) -> None:
        raise StateUnavailable("state.db: disk I/O error")

    def due(self, user: str, every: dt.timedelta, now: dt.datetime) -> bool:
        self._fail()
        return False

    def issue(self, user: str, ref: str, now: dt.datetime) -> str:
        self._fail()
        return ""

    def acknowledge(self, user: str, nonce: str, now: dt.datetime) -> Pending | None:
        self._fail()
        return None


def page_load(user: str, path: str = "/") -> http.HTTPFlow:
    f: http.HTTPFlow = social_flow(user, "x.com")
    f.request.path = path
    f.request.headers["accept"] = "text/html"
    return f


@pytest.mark.parametrize("path", ["/", "/__socialgate/acknowledge/abc?next=%2F"])
def test_unusable_state_blocks_the_page_load(
    parts: Parts, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """An exempt page load that cannot be reminded (or acknowledged) is blocked, recorded."""
    g, sink, _ = parts
    g.reminder.reminders = Broken()
    f = page_load("alice", path)
    with caplog.at_level(logging.ERROR):
        run(g.requestheaders(f))
        run(g.requestheaders(page_load("alice", path)))
    assert f.response is not None
    assert f.response.status_code == 403
    assert sink.records[-1]["event"]["reason"] == "error"
    assert [r.message for r in caplog.records].count(
        "socialgate: shared reminder state unavailable, reminding: state.db: disk I/O error"
    ) == 1


def test_unusable_state_lets_other_requests_through(parts: Parts) -> None:
    """Only page loads need the reminder: an exempt image or API call is not blocked."""
    g, sink, _ = parts
    g.reminder.reminders = Broken()
    f = social_flow("alice", "x.com")
    run(g.requestheaders(f))
    assert f.response is None
    assert sink.records[-1]["event"]["action"] == "request-allowed"


def test_sqlite_error_becomes_state_unavailable(tmp_path: pathlib.Path) -> None:
    """A SQLite failure at request time is StateUnavailable, naming the file."""
    store = SharedReminders(tmp_path / "state.db")
    store.db.close()
    with pytest.raises(StateUnavailable, match=r"state\.db"):
        store.due("alice", DAY, NOW)
