"""`socialgate exempt grant | renew | revoke | list`: round trips on a commented policy."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import pathlib
import re
import subprocess
import time
from typing import Any

import pytest

from proxy_addons.audit.verify import verify_logs
from proxy_addons.policy import edit
from proxy_addons.policy.load import load_policy
from tests.support.cli import Run, Socialgate, make_runner
from tests.support.commented_policy import policy_text, today, write_policy
from tests.support.proxy import BIN

Y = today().year
D = dt.timedelta


@pytest.fixture
def sg(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, monkeypatch: Any) -> Socialgate:
    monkeypatch.chdir(tmp_path)  # `socialgate init` creates keys/ and logs/ here
    monkeypatch.delenv("SOCIALGATE_POLICY", raising=False)
    monkeypatch.delenv("SOCIALGATE_CONFDIR", raising=False)
    run = make_runner(capsys)
    assert run("init").code == 0
    return run


@pytest.fixture
def policy(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_policy(tmp_path / "pol")


def records(tmp_path: pathlib.Path) -> list[dict[str, Any]]:
    log = tmp_path / "logs" / "admin-audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def grant_args(policy: pathlib.Path, *extra: str, user: str = "carol") -> list[str]:
    return [
        "exempt", "grant", "--policy", str(policy), "--user", user,
        "--sites", "facebook.com", "--access", "full",
        "--business-case", "Runs the recruitment campaign",
        "--approved-by", "d.smith", "--expires", str(today() + D(30)), *extra,
    ]  # fmt: skip


def removed_lines(before: str, after: str) -> list[str]:
    return [
        line[1:]
        for line in difflib.ndiff(before.splitlines(), after.splitlines())
        if line.startswith("- ")
    ]


# -- grant --------------------------------------------------------------------------


def test_grant_assigns_the_next_id_of_the_year(sg: Socialgate, policy: pathlib.Path) -> None:
    """The new id is EX-<this year>-<highest this year + 1>, last year's ids aside."""
    r = sg(*grant_args(policy))
    assert r.code == 0, r.err
    assert r.out.startswith(f"granted EX-{Y}-003:")
    ex = load_policy(policy).exemption(f"EX-{Y}-003")
    assert ex is not None
    assert (ex.user, ex.sites, ex.approved_by, ex.granted) == (
        "carol", ("facebook.com",), "d.smith", today(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["exempt", "revoke", f"EX-{Y}-001", "--by", "e.admin", "--reason", "Left the team"],
         "revoked"),
        (["exempt", "renew", f"EX-{Y}-002", "--expires", str(today() + D(80)),
          "--approved-by", "j.jones"], "renewed"),
        (grant_args(pathlib.Path("X"))[2:], "granted"),
    ],
)  # fmt: skip
def test_edits_keep_every_comment_and_line(
    sg: Socialgate, policy: pathlib.Path, argv: list[str], expected: str
) -> None:
    """Grant and revoke only add lines; renew only rewrites the renewed entry's fields."""
    before = policy.read_text()
    if argv[:2] != ["exempt", "revoke"] and argv[:2] != ["exempt", "renew"]:
        argv = grant_args(policy)
    else:
        argv = [*argv, "--policy", str(policy)]
    r = sg(*argv)
    assert r.code == 0, r.err
    assert r.out.startswith(expected)
    after = policy.read_text()
    removed = removed_lines(before, after)
    if expected == "renewed":
        assert sorted(x.split(":")[0].strip() for x in removed) == [
            "approved_by", "expires", "granted",
        ]  # fmt: skip
    else:
        assert removed == []
    comments = [x for x in before.splitlines() if "#" in x]
    assert [x for x in after.splitlines() if "#" in x] == comments


def test_revoked_entry_stays_marked_before_the_next_comment(
    sg: Socialgate, policy: pathlib.Path
) -> None:
    """The revocation is written inside its entry, above the comment introducing the next one."""
    r = sg("exempt", "revoke", f"EX-{Y}-001", "--policy", str(policy),
           "--by", "e.admin", "--reason", "Left the team")  # fmt: skip
    assert r.code == 0, r.err
    text = policy.read_text()
    block = text[text.index(f"id: EX-{Y}-001") : text.index("# Investigators")]
    assert (
        f"revoked:\n      date: {today()}\n      by: e.admin\n      reason: Left the team" in block
    )
    ex = load_policy(policy).exemption(f"EX-{Y}-001")
    assert ex is not None
    assert ex.revoked is not None
    assert (ex.revoked.by, ex.revoked.reason) == ("e.admin", "Left the team")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("--business-case", "no"),  # YAML 1.1 reads a plain no as false
        ("--business-case", "12:30"),  # … and this as the base-60 integer 750
        ("--business-case", "null"),
        ("--ticket", "0123"),  # … and this as the octal integer 83
    ],
)
def test_grant_writes_strings_the_loader_reads_back(
    sg: Socialgate, policy: pathlib.Path, field: str, value: str
) -> None:
    """Values that look like other YAML 1.1 types are quoted, so they stay text."""
    args = grant_args(policy)
    if field in args:
        args[args.index(field) + 1] = value
    else:
        args += [field, value]
    r = sg(*args)
    assert r.code == 0, r.err
    ex = load_policy(policy).exemption(f"EX-{Y}-003")
    assert ex is not None
    assert (ex.business_case if field == "--business-case" else ex.ticket) == value


def test_grant_with_schedule_and_group(sg: Socialgate, policy: pathlib.Path) -> None:
    """A group grant with a schedule lands as the proxy will read it."""
    args = grant_args(policy)
    args[args.index("--user") : args.index("--user") + 2] = ["--group", "press-office"]
    r = sg(*args, "--schedule", "mon-fri 8:00-18:30 Europe/London", "--sites", "x.com")
    assert r.code == 0, r.err
    ex = load_policy(policy).exemption(f"EX-{Y}-003")
    assert ex is not None
    assert ex.schedule is not None
    assert ex.group == "press-office"
    assert ex.sites == ("facebook.com", "x.com")
    assert sorted(ex.schedule.days) == [0, 1, 2, 3, 4]
    assert (str(ex.schedule.start), str(ex.schedule.end)) == ("08:00:00", "18:30:00")
    assert ex.schedule.timezone.key == "Europe/London"


@pytest.mark.parametrize(
    "text",
    [
        policy_text().split("exemptions:\n")[0]
        + "exemptions: []\n\n# Revoked entries stay in the file as evidence.\n",
        policy_text().split("exemptions:\n")[0],
    ],
    ids=["empty-flow-list", "no-exemptions-key"],
)
def test_grant_into_a_policy_without_exemptions(
    sg: Socialgate, tmp_path: pathlib.Path, text: str
) -> None:
    """The first grant creates a block list (and the key if missing)."""
    path = write_policy(tmp_path / "pol", text)
    r = sg(*grant_args(path))
    assert r.code == 0, r.err
    assert f"exemptions:\n  - id: EX-{Y}-001\n" in path.read_text()
    assert [e.id for e in load_policy(path).exemptions] == [f"EX-{Y}-001"]


# -- refusals: nothing written ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--expires": str(today() - D(1))}, "the date is in the past"),
        ({"--expires": str(today() + D(90))}, "more than the policy's max_exemption_days (90)"),
        ({"--expires": "31/12/2026"}, "not a date YYYY-MM-DD"),
        ({"--business-case": "  "}, "--business-case must not be empty"),
        ({"--approved-by": ""}, "--approved-by must not be empty"),
        ({"--user": None, "--group": "nobody"}, "no such group in the policy"),
        ({"--group": "press-office"}, "give exactly one of --user or --group"),
        ({"--sites": "bad!site.com"}, "neither a valid domain nor a category name"),
        ({"--schedule": "weekdays"}, "expected DAYS HH:MM-HH:MM"),
        ({"--schedule": "mon-fri 9-17"}, "'9' is not a time HH:MM"),
        ({"--schedule": "mon-fry 09:00-17:00"}, "is not a day or range like mon-fri"),
    ],
)
def test_grant_refusals_leave_the_file_untouched(
    sg: Socialgate, policy: pathlib.Path, change: dict[str, str | None], message: str
) -> None:
    """A bad grant exits 2 with a one-line reason and writes nothing, not even an audit record."""
    args = grant_args(policy)
    for option, value in change.items():
        if option in args:
            i = args.index(option)
            del args[i : i + 2]
        if value is not None:
            args += [option, value]
    before = policy.read_bytes()
    r = sg(*args)
    assert r.code == 2
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert policy.read_bytes() == before
    assert records(policy.parent.parent) == []  # init left it empty; nothing was added


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["revoke", "EX-1999-001", "--by", "a", "--reason", "r"], "no exemption 'EX-1999-001'"),
        (["revoke", f"EX-{Y}-001", "--by", " ", "--reason", "r"], "--by must not be empty"),
        (["revoke", f"EX-{Y}-001", "--by", "a", "--reason", ""], "--reason must not be empty"),
        (["renew", f"EX-{Y}-002", "--expires", str(today() - D(1)), "--approved-by", "a"],
         "the date is in the past"),
        (["renew", f"EX-{Y}-002", "--expires", str(today() + D(90)), "--approved-by", "a"],
         "max_exemption_days (90)"),
        (["renew", f"EX-{Y}-002", "--expires", str(today() + D(30)), "--approved-by", ""],
         "--approved-by must not be empty"),
    ],
)  # fmt: skip
def test_renew_and_revoke_refusals(
    sg: Socialgate, policy: pathlib.Path, argv: list[str], message: str
) -> None:
    """Bad renewals and revocations exit 2 and leave the file as it was."""
    before = policy.read_bytes()
    r = sg("exempt", *argv, "--policy", str(policy))
    assert r.code == 2
    assert message in r.err
    assert policy.read_bytes() == before


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (["revoke", "--by", "x", "--reason", "again"], "was already revoked on"),
        (["renew", "--expires", str(today() + D(40)), "--approved-by", "x"], "was revoked on"),
    ],
)
def test_a_revoked_exemption_cannot_be_revoked_or_renewed(
    sg: Socialgate, policy: pathlib.Path, second: list[str], message: str
) -> None:
    """Revocation is final: a new grant is needed."""
    first = sg("exempt", "revoke", f"EX-{Y}-001", "--policy", str(policy),
               "--by", "e.admin", "--reason", "Left")  # fmt: skip
    assert first.code == 0, first.err
    r = sg("exempt", second[0], f"EX-{Y}-001", *second[1:], "--policy", str(policy))
    assert r.code == 2
    assert message in r.err


def test_renew_restarts_the_approval_period(sg: Socialgate, policy: pathlib.Path) -> None:
    """Renewing sets the new expiry and approver; max_exemption_days counts from today."""
    new = today() + D(89)  # 90 days counting today: allowed only if granted moves to today
    r = sg("exempt", "renew", f"EX-{Y}-002", "--policy", str(policy),
           "--expires", str(new), "--approved-by", "j.jones")  # fmt: skip
    assert r.code == 0, r.err
    ex = load_policy(policy).exemption(f"EX-{Y}-002")
    assert ex is not None
    assert (ex.granted, ex.expires, ex.approved_by) == (today(), new, "j.jones")


# -- audit records ---------------------------------------------------------------------


def test_each_change_is_audited_with_admin_and_target(
    sg: Socialgate, policy: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """grant/renew/revoke each append one verifiable record naming admin and affected party."""
    assert sg(*grant_args(policy)).code == 0
    assert (
        sg(
            "exempt",
            "renew",
            f"EX-{Y}-002",
            "--policy",
            str(policy),
            "--expires",
            str(today() + D(50)),
            "--approved-by",
            "j.jones",
        ).code
        == 0
    )
    assert sg("exempt", "revoke", f"EX-{Y}-001", "--policy", str(policy),
              "--by", "e.admin", "--reason", "Left the team").code == 0  # fmt: skip
    recs = records(tmp_path)
    got = [
        (
            r["event"]["action"],
            r["user"]["name"],
            r["user"]["target"].get("name"),
            r["user"]["target"].get("group", {}).get("name"),
            r["socialgate"]["exemption_id"],
        )
        for r in recs
    ]
    assert got == [
        ("exemption-granted", "d.smith", "carol", None, f"EX-{Y}-003"),
        ("exemption-renewed", "j.jones", "dana", None, f"EX-{Y}-002"),
        ("exemption-revoked", "e.admin", None, "press-office", f"EX-{Y}-001"),
    ]
    assert recs[1]["socialgate"]["previous"]["approved_by"] == "d.smith"
    assert recs[2]["socialgate"]["revoked"]["reason"] == "Left the team"
    assert recs[-1]["socialgate"]["policy_sha256"] == load_policy(policy).sha256
    assert all(r["socialgate"]["os_user"] for r in recs)
    result = verify_logs(
        [tmp_path / "logs" / "admin-audit.jsonl"], key_path=tmp_path / "keys" / "audit-hmac.key"
    )
    assert result.ok, result


def test_unrecordable_change_is_rolled_back(
    sg: Socialgate, policy: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """If the audit record cannot be written, the policy file is put back and the CLI exits 2."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    before = policy.read_bytes()
    r = sg(*grant_args(policy), "--audit-log", str(blocker / "admin.jsonl"))
    assert r.code == 2
    assert "the policy file was left unchanged" in r.err
    assert policy.read_bytes() == before


# -- files: symlinks, modes, locking, concurrency ---------------------------------------


def test_symlinked_policy_stays_a_symlink(sg: Socialgate, tmp_path: pathlib.Path) -> None:
    """Editing through a symlink rewrites its target and keeps the link and the mode."""
    real = write_policy(tmp_path / "pol").rename(tmp_path / "pol" / "policy-v1.yaml")
    real.chmod(0o640)
    link = tmp_path / "pol" / "policy.yaml"
    link.symlink_to(real.name)
    r = sg(*grant_args(link))
    assert r.code == 0, r.err
    assert link.is_symlink()
    assert f"EX-{Y}-003" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640


def test_edit_waits_for_the_lock_then_gives_up(
    sg: Socialgate, policy: pathlib.Path, monkeypatch: Any
) -> None:
    """While another admin holds the lock, an edit is refused with exit 2 (after a wait)."""
    monkeypatch.setattr(edit, "LOCK_TIMEOUT", 0.3)
    before = policy.read_bytes()
    with edit.locked(policy):
        r = sg(*grant_args(policy))
    assert r.code == 2
    assert "another admin is editing it" in r.err
    assert policy.read_bytes() == before


def test_concurrent_grants_keep_both(tmp_path: pathlib.Path) -> None:
    """Two processes granting at once: both grants land, with distinct ids."""
    policy = write_policy(tmp_path / "pol")
    env = dict(os.environ)
    env.pop("SOCIALGATE_POLICY", None)
    env.pop("SOCIALGATE_CONFDIR", None)
    subprocess.run([str(BIN / "socialgate"), "init"], cwd=tmp_path, env=env, check=True)
    procs: list[subprocess.Popen[str]] = []
    # Hold the lock while both start, so they really contend for it.
    with edit.locked(policy):
        for user in ("carol", "frank"):
            procs.append(
                subprocess.Popen(
                    [str(BIN / "socialgate"), *grant_args(policy, user=user)],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(1.0)
    results = [(p.wait(30), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    ids = sorted(out.split(":")[0].split()[1] for _, out, _ in results)
    assert ids == [f"EX-{Y}-003", f"EX-{Y}-004"]
    users = {e.id: e.user for e in load_policy(policy).exemptions if e.user is not None}
    assert sorted(users[i] for i in ids) == ["carol", "frank"]
    assert len(records(tmp_path)) == 2


# -- list ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "ids"),
    [
        ([], [f"EX-{Y}-001", f"EX-{Y}-002"]),
        (["--include-expired"], [f"EX-{Y}-001", f"EX-{Y}-002", f"EX-{Y - 1}-007"]),
        (["--user", "alice"], [f"EX-{Y}-001"]),  # through the press-office group
        (["--user", "nobody"], []),
        (["--group", "press-office"], [f"EX-{Y}-001"]),
        (["--expiring-within", "30d"], [f"EX-{Y}-001"]),
        (["--expiring-within", "9w"], [f"EX-{Y}-001", f"EX-{Y}-002"]),
    ],
)
def test_list_filters(
    sg: Socialgate, policy: pathlib.Path, args: list[str], ids: list[str]
) -> None:
    """list shows what is in force by default; filters narrow it."""
    r = sg("exempt", "list", "--policy", str(policy), "--format", "json", *args)
    assert r.code == 0, r.err
    assert [row["id"] for row in json.loads(r.out)] == ids


def test_list_marks_revoked_entries(sg: Socialgate, policy: pathlib.Path) -> None:
    """A revoked exemption leaves the default list and shows as revoked with --include-expired."""
    sg("exempt", "revoke", f"EX-{Y}-001", "--policy", str(policy), "--by", "e.admin",
       "--reason", "Left")  # fmt: skip
    default = sg("exempt", "list", "--policy", str(policy))
    assert f"EX-{Y}-001" not in default.out
    full = sg("exempt", "list", "--policy", str(policy), "--include-expired")
    row = next(line for line in full.out.splitlines() if line.startswith(f"EX-{Y}-001"))
    assert row.split()[1] == "revoked"
    assert full.out.splitlines()[0].split()[:3] == ["ID", "STATUS", "WHO"]


@pytest.mark.parametrize("value", ["soon", "30x", "-3d"])
def test_list_rejects_bad_durations(sg: Socialgate, policy: pathlib.Path, value: str) -> None:
    """--expiring-within must be days or weeks."""
    r: Run = sg("exempt", "list", "--policy", str(policy), "--expiring-within", value)
    assert r.code == 2
    assert "--expiring-within" in r.err


def test_grant_of_a_site_no_category_blocks_is_refused(
    sg: Socialgate, policy: pathlib.Path
) -> None:
    """A typo such as facebok.com would exempt nothing: refused, nothing written."""
    args = grant_args(policy)
    args[args.index("facebook.com")] = "facebok.com"
    before = policy.read_bytes()
    r = sg(*args)
    assert r.code == 2
    assert r.err.startswith("socialgate: --sites facebok.com: no blocked category contains it")
    assert policy.read_bytes() == before
    assert records(policy.parent.parent) == []


def test_validate_reports_exemptions_of_unblocked_sites(
    sg: Socialgate, tmp_path: pathlib.Path
) -> None:
    """`policy validate` names an existing exemption whose site no blocked category lists."""
    text = policy_text().replace("sites: [facebook.com]", "sites: [facebok.com]", 1)
    path = write_policy(tmp_path / "typo", text)
    r = sg("policy", "validate", str(path))
    assert r.code == 0, r.err
    assert "facebok.com is in no blocked category" in r.err
    assert re.search(rf"^warning: {re.escape(str(path))}:\d+: exemption EX-", r.err)
