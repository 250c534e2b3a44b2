"""The policy watcher on real files: what it swaps in, what it keeps, what it records."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pathlib
import signal
from collections.abc import Awaitable, Callable

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from proxy_addons.addons import policy_watcher as reload
from proxy_addons.addons.policy_store import PolicyStore, read_policy
from proxy_addons.addons.policy_watcher import PolicyWatcher
from proxy_addons.decide import Reason, decide
from proxy_addons.policy import edit
from proxy_addons.policy.model import Access
from tests.support.categories import SOCIAL_LIST
from tests.support.commented_policy import today, write_policy
from tests.support.fake_audit import FakeAuditTrail

Y = today().year


class Rig:
    def __init__(self, directory: pathlib.Path) -> None:
        self.path = write_policy(directory)
        self.store = PolicyStore()
        self.store.path = str(self.path)
        self.audit = FakeAuditTrail()
        self.watcher = PolicyWatcher(self.store, self.audit)
        self.store.install(read_policy(str(self.path)))
        self.first = self.store.require()

    def rewrite(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text
        self.path.write_text(text.replace(old, new, 1))

    def line_of(self, needle: str) -> int:
        return self.path.read_text().splitlines().index(needle) + 1


@pytest.fixture
def rig(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setattr(reload, "SETTLE_SECONDS", 0.1)
    return Rig(tmp_path)


def result(outcome: reload.Outcome | None) -> str | None:
    return outcome.result if outcome is not None else None


def run[T](coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def grant_dana(path: pathlib.Path) -> str:
    spec = edit.GrantSpec(
        user="carol", group=None, sites=("facebook.com",), access=Access.FULL,
        business_case="Recruitment campaign", approved_by="d.smith",
        expires=today() + dt.timedelta(days=20),
    )  # fmt: skip
    return edit.grant(path, spec).exemption_id


# -- what is loaded --------------------------------------------------------------------


def test_start_up_load_is_recorded(rig: Rig) -> None:
    """The first policy in force is on the record with its sha256 and every exemption added."""
    [rec] = rig.audit.records
    assert rec["event"]["action"] == "policy-loaded"
    assert rec["socialgate"]["trigger"] == "startup"
    assert rec["socialgate"]["policy_sha256"] == rig.first.sha256
    assert rec["socialgate"]["changes"]["exemptions"]["added"] == [
        e.id for e in rig.first.exemptions
    ]


def test_nothing_changed_nothing_happens(rig: Rig) -> None:
    """Without a change the watcher neither reloads nor records."""
    assert run(rig.watcher.check()) is None
    assert rig.store.current is rig.first
    assert len(rig.audit.records) == 1


def test_touch_without_content_change_keeps_the_policy(rig: Rig) -> None:
    """A new mtime with the same bytes is read, found identical, and not recorded."""
    os.utime(rig.path, ns=(1, 1))
    assert result(run(rig.watcher.check())) == "unchanged"
    assert rig.store.current is rig.first
    assert len(rig.audit.records) == 1
    assert run(rig.watcher.check()) is None


def test_grant_is_swapped_in_and_recorded(rig: Rig) -> None:
    """A grant made with the CLI is in force after one check, with its id in the record."""
    new_id = grant_dana(rig.path)
    assert result(run(rig.watcher.check())) == "loaded"
    policy = rig.store.require()
    assert decide(policy, "carol", ["www.facebook.com"], "POST", dt.datetime.now(dt.UTC)).allowed
    rec = rig.audit.records[-1]
    assert rec["event"]["action"] == "policy-loaded"
    assert rec["socialgate"]["trigger"] == "change"
    assert rec["socialgate"]["previous_sha256"] == rig.first.sha256
    assert rec["socialgate"]["policy_sha256"] == policy.sha256 != rig.first.sha256
    assert rec["socialgate"]["changes"]["exemptions"] == {
        "added": [new_id], "removed": [], "changed": [],
    }  # fmt: skip


def test_revocation_is_swapped_in_and_recorded(rig: Rig) -> None:
    """A revocation bites as soon as it is swapped in; the record names the changed field."""
    edit.revoke(rig.path, f"EX-{Y}-001", by="e.admin", reason="Left the team")
    run(rig.watcher.check())
    d = decide(rig.store.require(), "alice", ["x.com"], "GET", dt.datetime.now(dt.UTC))
    assert (d.allowed, d.reason) == (False, Reason.REVOKED)
    assert rig.audit.records[-1]["socialgate"]["changes"]["exemptions"]["changed"] == [
        {"id": f"EX-{Y}-001", "fields": ["revoked"]}
    ]


def test_category_file_change_is_picked_up(rig: Rig) -> None:
    """Editing a category list the policy names reloads it; the record counts the change."""
    (rig.path.parent / "categories" / "social.txt").write_text(SOCIAL_LIST + "tiktok.com\n")
    assert result(run(rig.watcher.check())) == "loaded"
    d = decide(rig.store.require(), "carol", ["www.tiktok.com"], "GET", dt.datetime.now(dt.UTC))
    assert d.blocked
    [change] = rig.audit.records[-1]["socialgate"]["changes"]["categories"]["changed"]
    assert (change["name"], change["domains_added"], change["domains_removed"]) == (
        "social_networking", 1, 0,
    )  # fmt: skip


# -- what is refused -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("    access: read-only", "    access: read-only\n  sites: [oops", "  sites: [oops",
         "invalid YAML"),
        ("    access: read-only", "    acess: read-only", "    acess: read-only",
         "unknown key 'acess'"),
        ("    group: press-office             # the whole team", "    group: press",
         "    group: press", "unknown group 'press'"),
        ("blocked_categories: [social_networking]", "blocked_categories: [social]",
         "blocked_categories: [social]", "unknown category"),
    ],
)  # fmt: skip
def test_broken_edit_keeps_last_good_and_is_recorded(
    rig: Rig, old: str, new: str, needle: str, message: str
) -> None:
    """A broken file changes nothing in force; the failure is recorded as file:line: message."""
    rig.rewrite(old, new)
    assert result(run(rig.watcher.check())) == "failed"
    assert rig.store.current is rig.first
    rec = rig.audit.records[-1]
    assert rec["event"]["action"] == "policy-reload-failed"
    assert rec["event"]["outcome"] == "failure"
    errors = rec["socialgate"]["errors"]
    first = errors[0]
    assert rec["event"]["reason"] == f"{first['file']}:{first['line']}: {first['message']}"
    hit = next(e for e in errors if message in e["message"])
    assert hit["file"] == str(rig.path)
    if message != "invalid YAML":
        assert hit["line"] == rig.line_of(needle)
    assert rec["socialgate"]["policy_sha256"] == rig.first.sha256


def test_failure_is_recorded_once_and_the_fix_is_loaded(rig: Rig) -> None:
    """A broken file is not retried until it changes again; the fix then goes in."""
    rig.rewrite("version: 1", "version: 2")
    run(rig.watcher.check())
    assert run(rig.watcher.check()) is None
    assert rig.audit.actions() == ["policy-loaded", "policy-reload-failed"]
    rig.rewrite("version: 2", "version: 1\n# fixed")
    assert result(run(rig.watcher.check())) == "loaded"
    assert rig.audit.actions()[-1] == "policy-loaded"


def test_deleted_policy_keeps_last_good(rig: Rig) -> None:
    """Deleting the policy file never leaves the proxy without a policy; restoring it reloads."""
    text = rig.path.read_text()
    rig.path.unlink()
    assert result(run(rig.watcher.check())) == "failed"
    assert rig.store.current is rig.first
    assert "cannot read policy file" in rig.audit.records[-1]["event"]["reason"]
    rig.path.write_text(text + "# restored\n")
    assert result(run(rig.watcher.check())) == "loaded"


def test_missing_category_file_is_watched_until_it_appears(rig: Rig) -> None:
    """A policy naming a list that does not exist yet fails, then loads once the list is written."""
    rig.rewrite("[categories/social.txt]", "[categories/social.txt, categories/more.txt]")
    assert result(run(rig.watcher.check())) == "failed"
    (rig.path.parent / "categories" / "more.txt").write_text("tiktok.com\n")
    assert result(run(rig.watcher.check())) == "loaded"
    now = dt.datetime.now(dt.UTC)
    assert decide(rig.store.require(), "carol", ["tiktok.com"], "GET", now).blocked


def test_file_saved_in_two_steps_is_read_once_complete(rig: Rig) -> None:
    """An editor writing in steps: the watcher waits for the file to settle, no failure."""
    full = rig.path.read_text().replace("organisation: Test Department", "organisation: Renamed")
    half = full[: len(full) // 2]

    async def scenario() -> reload.Outcome | None:
        rig.path.write_text(half)
        check = asyncio.create_task(rig.watcher.check())
        await asyncio.sleep(0.05)
        rig.path.write_text(full)
        return await check

    assert result(run(scenario())) == "loaded"
    assert rig.store.require().organisation == "Renamed"
    assert "policy-reload-failed" not in rig.audit.actions()


# -- triggers --------------------------------------------------------------------------


def in_running_watcher(rig: Rig, interval: float, body: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        rig.watcher.interval = interval
        rig.watcher.running()
        try:
            await body()
        finally:
            rig.watcher.done()

    asyncio.run(main())


async def wait_for_change(rig: Rig, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.05)):
        if rig.store.current is not rig.first:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the policy was not reloaded")


def test_polling_reloads_within_seconds(rig: Rig) -> None:
    """With polling on, a change is in force within a couple of intervals."""

    async def body() -> None:
        grant_dana(rig.path)
        await wait_for_change(rig)

    in_running_watcher(rig, 0.2, body)
    assert rig.audit.records[-1]["socialgate"]["trigger"] == "change"


def test_sighup_reloads_at_once(rig: Rig) -> None:
    """SIGHUP reloads even with polling off."""

    async def body() -> None:
        assert rig.watcher._sighup, "SIGHUP handler not installed"
        grant_dana(rig.path)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for_change(rig)

    in_running_watcher(rig, 0, body)
    assert rig.audit.records[-1]["socialgate"]["trigger"] == "sighup"


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0", True), ("2.5", True), ("-1", False), ("0.01", False), ("nan", False), ("x", False)],
)
def test_reload_interval_option(value: str, ok: bool) -> None:
    """socialgate_reload_interval is 0 (off) or at least 0.1 s; anything else names the option."""
    watcher = PolicyWatcher(PolicyStore(), FakeAuditTrail())
    with taddons.context(watcher) as tctx:
        if ok:
            tctx.configure(watcher, socialgate_reload_interval=value)
            assert watcher.interval == float(value)
        else:
            with pytest.raises(exceptions.OptionsError, match="socialgate_reload_interval"):
                tctx.configure(watcher, socialgate_reload_interval=value)
