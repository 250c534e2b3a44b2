"""Investigation from a case folder: copied logs and keys, no policy, no configuration."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from tests.support.cli import Socialgate, make_runner
from tests.support.commented_policy import today, write_policy


@pytest.fixture
def sg(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Socialgate:
    monkeypatch.delenv("SOCIALGATE_POLICY", raising=False)
    return make_runner(capsys)


@pytest.fixture
def case(sg: Socialgate, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A trail made by admin commands in an installation, copied to a fresh case folder."""
    site = tmp_path / "site"
    site.mkdir()
    policy = write_policy(site / "pol")
    monkeypatch.chdir(site)
    assert sg("init").code == 0
    grant = sg(
        "exempt", "grant", "--policy", str(policy), "--user", "carol", "--sites", "facebook.com",
        "--access", "full", "--business-case", "Campaign", "--approved-by", "d.smith",
        "--expires", str(today()),
    )  # fmt: skip
    assert grant.code == 0, grant.err
    ex_id = grant.out.split()[1].rstrip(":")
    revoke = sg("exempt", "revoke", ex_id, "--policy", str(policy), "--by", "e.admin",
                "--reason", "Campaign over")  # fmt: skip
    assert revoke.code == 0, revoke.err
    folder = tmp_path / "case"
    shutil.copytree(site / "logs", folder / "logs")
    shutil.copytree(site / "keys", folder / "keys")
    monkeypatch.chdir(folder)
    return folder


def test_all_four_commands_work_without_a_policy(sg: Socialgate, case: pathlib.Path) -> None:
    """verify, search, stats and report read the same files; report says no policy was given."""
    v = sg("audit", "verify")
    assert v.code == 0, v.out
    assert "2 records" in v.out
    s = sg("audit", "search", "--format", "json")
    assert s.code == 0, s.err
    actions = [json.loads(line)["event"]["action"] for line in s.out.splitlines()]
    assert actions == ["exemption-granted", "exemption-revoked"]
    st = sg("audit", "stats", "--format", "json")
    assert st.code == 0, st.err
    r = sg("audit", "report", "--user", "e.admin", "--html", "r.html", "--format", "json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["policy"] is None
    assert [e["event"] for e in data["events"]] != []
    assert data["integrity"]["ok"] is True
    html = (case / "r.html").read_text()
    assert "none given" in html
    assert "no policy given" in r.err


def test_a_wrong_key_is_one_line(sg: Socialgate, case: pathlib.Path) -> None:
    """A key that fails every record from the first: the wrong key, said once, exit 2."""
    (case / "keys" / "audit-hmac.key").write_text("ab" * 32 + "\n")
    v = sg("audit", "verify")
    assert v.code == 2
    assert v.err.strip().splitlines() == [
        "socialgate: wrong key: keys/audit-hmac.key matches none of the 2 records, from the "
        "first: these logs were sealed with another key (use the installation's, named by its "
        "config.yaml)"
    ]
    assert v.out == ""
