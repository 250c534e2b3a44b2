"""Policy loading: the valid shapes build the right `Policy`; every invalid one names file:line."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy_addons.errors import PolicyError
from proxy_addons.hosts import IPAddress, parse_ip
from proxy_addons.policy import yamlmarks
from proxy_addons.policy.load import load_policy, parse_policy_text
from proxy_addons.policy.model import UTC, Access, Policy
from proxy_addons.policy.policyfile import MAX_POLICY_BYTES
from tests.support.invalid_policies import INVALID
from tests.support.policy_texts import (
    PRODUCT_EXAMPLE,
    SHIPPED,
    UNICODE_EXAMPLE,
    VALID,
    sub,
    write_policy,
)


def ip(text: str) -> IPAddress:
    """The address ``text`` spells, as the loader parses it."""
    address = parse_ip(text)
    assert address is not None, text
    return address


def site_of(policy: Policy, host: str) -> str | None:
    """``category/site`` of the index entry covering host, as the proxy would see it."""
    m = policy.index.domains.match(host)
    if m is None:
        return None
    category, _, site = m.value.partition("\x1f")
    return f"{category}/{site or m.entry}"  # an empty site is the entry itself


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_policy_names_its_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    """Each invalid policy is refused with exactly one error at the offending line."""
    path = write_policy(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert [(p, n) for p, n, _ in info.value.errors] == [(str(path), line)], info.value.errors
    assert fragment in info.value.message
    assert str(info.value).startswith(f"{path}:{line}: " if line else f"{path}: ")


YAML_LEVEL = [
    c
    for c in INVALID
    if "YAML" in c[0]
    or c[0]
    in {
        "empty file",
        "comments only",
        "top level is a list",
        "two documents",
        "billion laughs",
        "alias",
        "merge key",
        "deep nesting",
        "duplicate key",
        "non-string key",
        "unknown scalar tag",
    }
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"), [c[1:] for c in YAML_LEVEL], ids=[c[0] for c in YAML_LEVEL]
)
def test_pure_python_parser_agrees(
    monkeypatch: pytest.MonkeyPatch, text: str, line: int, fragment: str
) -> None:
    """Without libyaml, the pure-Python composer refuses the same documents at the same line."""
    monkeypatch.setattr(yamlmarks, "_CLoader", None)
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, "policy.yaml")
    assert (info.value.line, fragment in info.value.message) == (line, True)


def test_pure_python_parser_builds_the_same_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml, the Unicode example builds the same policy."""
    fast = load_policy(UNICODE_EXAMPLE)
    monkeypatch.setattr(yamlmarks, "_CLoader", None)
    slow = load_policy(UNICODE_EXAMPLE)
    assert (slow.exemptions, slow.sha256) == (fast.exemptions, fast.sha256)


def test_invalid_table_is_large_enough() -> None:
    """The table covers at least 25 distinct invalid policies."""
    assert len({c[1] for c in INVALID}) >= 25


def test_every_error_is_reported_in_line_order(tmp_path: Path) -> None:
    """Several problems in one file are all reported, sorted by line."""
    text = sub("version: 1", "version: 2")
    text = sub("access: full", "access: fullish", text) + "colour: red\n"
    with pytest.raises(PolicyError) as info:
        load_policy(write_policy(tmp_path, text))
    assert [line for _, line, _ in info.value.errors] == [1, 13, 18]


def test_category_list_errors_name_the_list_file(tmp_path: Path) -> None:
    """Errors inside a category list are reported as list-file:line, after the policy's own."""
    text = (
        sub("    domains: [", "    domains_files: [categories/x.txt]\n    domains: [") + "bad: 1\n"
    )
    path = write_policy(tmp_path, text, {"categories/x.txt": "ok.example\nnot a domain\n[bad\n"})
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    list_path = str(tmp_path / "categories" / "x.txt")
    assert [(p, n) for p, n, _ in info.value.errors] == [
        (str(path), 19),
        (list_path, 2),
        (list_path, 3),
    ]


def test_category_list_not_utf8(tmp_path: Path) -> None:
    """A category list that is not UTF-8 is refused with the line of the bad byte."""
    text = sub("    domains: [", "    domains_files: [x.txt]\n    domains: [")
    path = write_policy(tmp_path, text)
    (tmp_path / "x.txt").write_bytes(b"a.example\nb\xff.example\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.errors == [(str(tmp_path / "x.txt"), 2, "category file is not UTF-8 text")]


def test_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    """A missing policy file is a PolicyError without a line number."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: cannot read policy file")


def test_policy_file_not_utf8(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are refused with their line."""
    path = tmp_path / "policy.yaml"
    path.write_bytes(VALID.encode().replace(b"Org", b"Org\xe9"))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert (info.value.line, info.value.message) == (2, "policy file is not UTF-8 text")


def test_huge_policy_file_is_refused(tmp_path: Path) -> None:
    """A policy file over the size cap is refused before parsing."""
    path = write_policy(tmp_path, VALID + "#" * MAX_POLICY_BYTES + "\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "larger than" in info.value.message
    with pytest.raises(PolicyError):
        parse_policy_text(path.read_text(), str(path))


# --- valid policies ---------------------------------------------------------------------------


def test_product_example_loads() -> None:
    """The example in PRODUCT.md loads as-is, with every field built."""
    p = load_policy(PRODUCT_EXAMPLE)
    assert (p.version, p.organisation, p.contact) == (
        1,
        "Example Department",
        "it-security@example.org",
    )
    assert p.policy_url == "https://intranet.example.org/social-media-policy"
    assert p.blocked_categories == ("social_networking",)
    assert p.groups == {"press-office": frozenset({"alice", "bob"})}
    assert p.source_addresses == {parse_ip("10.20.0.15"): "kiosk-reception"}
    (ex,) = p.exemptions
    assert (ex.id, ex.group, ex.user, ex.sites, ex.access) == (
        "EX-2026-001",
        "press-office",
        None,
        ("linkedin.com", "x.com"),
        Access.FULL,
    )
    assert (ex.granted, ex.expires, ex.ticket, ex.approved_by) == (
        dt.date(2026, 1, 10),
        dt.date(2026, 12, 31),
        "CHG-1042",
        "d.smith",
    )
    assert ex.line == 18
    assert ex.schedule is not None
    assert ex.schedule.days == frozenset(range(5))
    assert (ex.schedule.start, ex.schedule.end) == (dt.time(8), dt.time(18))
    assert str(ex.schedule.timezone) == "Europe/London"
    assert p.reminder is not None
    assert p.reminder.every == dt.timedelta(hours=24)
    assert p.reminder.text.startswith("Do not disclose")
    assert (p.timezone, p.apply_url, p.max_exemption_days) == (UTC, None, 365)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.facebook.com", "social_networking/facebook.com"),
        ("static.fbcdn.net", "social_networking/facebook.com"),
        ("pbs.twimg.com", "social_networking/x.com"),
        ("loose-entry.example", "social_networking/loose-entry.example"),
        ("mastodon.social", "social_networking/mastodon.social"),
        ("notfacebook.com", None),
        ("example.org", None),
    ],
)
def test_product_example_index(host: str, expected: str | None) -> None:
    """Domains match by suffix; [site] groups give the site; inline domains are their own."""
    assert site_of(load_policy(PRODUCT_EXAMPLE), host) == expected


def test_product_example_exemptions_by_user() -> None:
    """A group exemption is listed under each member; user_groups inverts groups."""
    p = load_policy(PRODUCT_EXAMPLE)
    assert {u: [e.id for e in exs] for u, exs in p.exemptions_by_user.items()} == {
        "alice": ["EX-2026-001"],
        "bob": ["EX-2026-001"],
    }
    assert p.user_groups == {"alice": ("press-office",), "bob": ("press-office",)}


def test_shipped_policy_loads() -> None:
    """policies/policy.yaml loads, blocks the big networks and grants the two exemptions."""
    p = load_policy(SHIPPED)
    assert str(p.timezone) == "Europe/London"
    assert p.apply_url is not None
    assert p.apply_url.startswith("https://")
    for host, site in [
        ("www.facebook.com", "facebook.com"),
        ("scontent.cdninstagram.com", "instagram.com"),
        ("t.co", "x.com"),
        ("media.licdn.com", "linkedin.com"),
        ("vm.tiktok.com", "tiktok.com"),
        ("i.redd.it", "reddit.com"),
        ("discord.gg", "discord.com"),
        ("mastodon.social", "mastodon.social"),
    ]:
        assert site_of(p, host) == f"social_networking/{site}", host
    assert site_of(p, "intranet.example.org") is None
    assert [e.id for e in p.exemptions_by_user["alice"]] == ["EX-2026-001"]
    dana = p.exemptions_by_user["dana"]
    assert [(e.id, e.sites, e.access) for e in dana] == [
        ("EX-2026-002", ("social_networking",), Access.READ_ONLY)
    ]
    assert p.source_addresses[ip("10.20.0.15")] == "kiosk-reception"
    assert p.reminder is not None


def test_shipped_policy_first_line_names_the_schema() -> None:
    """Editors find the JSON Schema through the first line of the shipped policy."""
    first = SHIPPED.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./policy.schema.json"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.münchen.example", "social/xn--mnchen-3ya.example"),
        ("WWW.XN--MNCHEN-3YA.EXAMPLE.", "social/xn--mnchen-3ya.example"),
        ("a.xn--mnchen-3ya-cdn.example", "social/xn--mnchen-3ya.example"),
        ("sozial.bücher.example", "social/sozial.xn--bcher-kva.example"),
        ("other.bücher.example", "social/xn--bcher-kva.example"),
        ("deep.wildcard.example", "social/wildcard.example"),
        ("xn--vido-dpa.example", "video/xn--vido-dpa.example"),
        ("social-too.example", "social/xn--bcher-kva.example"),  # first blocked category wins
    ],
)
def test_unicode_entries_are_normalised(host: str, expected: str) -> None:
    """Unicode and punycode spellings in lists and inline domains index the same name."""
    from proxy_addons.hosts import normalise_host

    normal = normalise_host(host)
    assert normal is not None
    assert site_of(load_policy(UNICODE_EXAMPLE), normal) == expected


def test_exemption_sites_are_stored_normalised() -> None:
    """Domain sites are stored in IDNA form; category names as written; int tickets as text."""
    p = load_policy(UNICODE_EXAMPLE)
    ex1, ex2, ex3 = p.exemptions
    assert ex1.sites == ("xn--bcher-kva.example", "video")
    assert (ex1.granted, ex1.expires) == (dt.date(2026, 1, 10), dt.date(2026, 6, 30))
    assert ex2.sites == ("xn--mnchen-3ya.example",)
    assert ex2.ticket == "1042"
    assert ex3.sites == ("social",)


def test_networks_are_indexed() -> None:
    """A blocked category's CIDRs match IP literals with "category\\x1fnetwork" values."""
    p = load_policy(UNICODE_EXAMPLE)
    m = p.index.networks.match(ip("203.0.113.7"))
    assert m is not None
    assert m.value == "video\x1f203.0.113.0/24"
    assert p.index.networks.match(ip("2001:db9::1")) is None


def test_exemptions_by_user_expands_groups_in_file_order() -> None:
    """A user gets direct and group exemptions, in file order; user_groups in groups order."""
    p = load_policy(UNICODE_EXAMPLE)
    assert {u: [e.id for e in exs] for u, exs in p.exemptions_by_user.items()} == {
        "alice": ["EX-1", "EX-2", "EX-3"],
        "bob": ["EX-2"],
        "carol": ["EX-3"],
    }
    assert p.user_groups == {"alice": ("team", "all"), "bob": ("team",), "carol": ("all",)}


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (dt.datetime(2026, 3, 7, 23, 30, tzinfo=UTC), True),  # Saturday night
        (dt.datetime(2026, 3, 9, 5, 59, tzinfo=UTC), True),  # small hours after Sunday
        (dt.datetime(2026, 3, 9, 6, 0, tzinfo=UTC), False),  # Monday 06:00
        (dt.datetime(2026, 3, 6, 23, 0, tzinfo=UTC), False),  # Friday night
    ],
)
def test_unquoted_overnight_schedule(when: dt.datetime, allowed: bool) -> None:
    """Unquoted 22:00 / 06:00 (YAML 1.1 base-60 integers) are read as times, overnight."""
    ex2 = load_policy(UNICODE_EXAMPLE).exemptions[1]
    assert ex2.schedule is not None
    assert ex2.schedule.allows(when) is allowed


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (dt.datetime(2026, 3, 9, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-4))), True),
        (dt.datetime(2026, 3, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4))), False),
        (dt.datetime(2026, 3, 9, 17, 59, tzinfo=dt.timezone(dt.timedelta(hours=-4))), False),
    ],
)
def test_schedule_until_2400(when: dt.datetime, allowed: bool) -> None:
    """to: "24:00" runs to the end of the day in the schedule's own time zone."""
    ex3 = load_policy(UNICODE_EXAMPLE).exemptions[2]
    assert ex3.schedule is not None
    assert ex3.schedule.allows(when) is allowed


def test_revocation_is_kept() -> None:
    """A revoked exemption stays in the policy with its revocation record."""
    ex3 = load_policy(UNICODE_EXAMPLE).exemptions[2]
    assert ex3.revoked is not None
    assert (ex3.revoked.date, ex3.revoked.by) == (dt.date(2025, 6, 1), "e.jones")


@pytest.mark.parametrize(
    ("extra", "user"),
    [
        ("users: [alice]\n", "alice"),
        ("users: [bob]\nidentity:\n  source_addresses:\n    '::1': alice\n", "alice"),
        ("users: [bob]\nidentity:\n  source_addresses:\n    2001:0:0:0:0:0:0:1: alice\n", "alice"),
    ],
)
def test_users_list_accepts_known_names(tmp_path: Path, extra: str, user: str) -> None:
    """With a users list, names listed there or used as source addresses are known."""
    p = load_policy(write_policy(tmp_path, VALID + extra))
    assert [e.id for e in p.exemptions_by_user[user]] == ["EX-1"]


def test_top_level_timezone_and_limits(tmp_path: Path) -> None:
    """timezone, apply_url and max_exemption_days are read into the Policy."""
    text = VALID + "timezone: Europe/Paris\napply_url: mailto:it@example.org\n"
    p = load_policy(write_policy(tmp_path, text + "max_exemption_days: 400\n"))
    assert (str(p.timezone), p.apply_url, p.max_exemption_days) == (
        "Europe/Paris",
        "mailto:it@example.org",
        400,
    )


def test_sha256_covers_policy_and_category_files(tmp_path: Path) -> None:
    """sha256 is over the policy bytes then each category file's, and changes with a list."""
    text = sub("    domains: [", "    domains_files: [a.txt, b.txt]\n    domains: [")
    path = write_policy(tmp_path, text, {"a.txt": "a.example\n", "b.txt": "b.example\n"})
    before = load_policy(path).sha256
    assert before == hashlib.sha256(text.encode() + b"a.example\nb.example\n").hexdigest()
    (tmp_path / "b.txt").write_text("b.example\nc.example\n")
    after = load_policy(path)
    assert after.sha256 != before
    assert site_of(after, "c.example") == "social/c.example"


def test_parse_policy_text_uses_read_file(tmp_path: Path) -> None:
    """parse_policy_text reads category files through the given callable, relative to path."""
    text = sub("    domains: [", "    domains_files: [lists/a.txt]\n    domains: [")
    asked: list[Path] = []

    def read_file(p: Path) -> bytes:
        asked.append(p)
        return b"[x.com]\ntwimg.com\n"

    policy = parse_policy_text(text, str(tmp_path / "policy.yaml"), read_file)
    assert asked == [tmp_path / "lists" / "a.txt"]
    assert site_of(policy, "pbs.twimg.com") == "social/x.com"
    assert policy.path == str(tmp_path / "policy.yaml")


def test_parse_policy_text_matches_load_policy(tmp_path: Path) -> None:
    """Text in hand and the same file on disk build the same policy (same sha256)."""
    path = write_policy(tmp_path, VALID)
    assert parse_policy_text(VALID, str(path)).sha256 == load_policy(path).sha256


def test_policy_mappings_are_read_only() -> None:
    """The built policy cannot be changed in place (a reload is a reference swap)."""
    p = load_policy(PRODUCT_EXAMPLE)
    with pytest.raises(TypeError):
        p.groups["x"] = frozenset()  # type: ignore[index]
    with pytest.raises(TypeError):
        p.exemptions_by_user["x"] = ()  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SOCIALGATE_PERF") != "1",
    reason="timing test: set SOCIALGATE_PERF=1 on an otherwise idle machine",
)
def test_million_domain_list() -> None:
    """A 1,000,000-domain category list loads in ≤ 3 s and the process stays ≤ 300 MB RSS."""
    script = Path(__file__).parent / "support" / "policy_load_perf.py"
    proc = subprocess.run(
        [sys.executable, str(script), "1000000", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(proc.stdout)
    assert result["domains"] == 1_001_000
    assert result["seconds"] <= 3.0, result
    assert result["peak_rss_mb"] <= 300, result


SHIPPED_NETWORKS = {
    "facebook.com": "facebook.com fb.com fb.me fbcdn.net fbsbx.com facebook.net messenger.com m.me",
    "instagram.com": "instagram.com cdninstagram.com instagr.am ig.me",
    "threads.net": "threads.net threads.com",
    "x.com": "x.com twitter.com t.co twimg.com twttr.com",
    "linkedin.com": "linkedin.com licdn.com lnkd.in",
    "tiktok.com": "tiktok.com vm.tiktok.com tiktokv.com tiktokcdn.com tiktokcdn-us.com "
    "ttwstatic.com byteoversea.com ibytedtos.com muscdn.com musical.ly",
    "snapchat.com": "snapchat.com snap.com sc-cdn.net snapkit.com sc-static.net",
    "reddit.com": "reddit.com redd.it redditmedia.com redditstatic.com",
    "pinterest.com": "pinterest.com pinterest.co.uk pinterest.de pinimg.com pin.it",
    "tumblr.com": "tumblr.com",
    "bsky.app": "bsky.app bsky.social",
    "mastodon.social": "mastodon.social",
    "discord.com": "discord.com discord.gg discordapp.com discordapp.net discord.media",
    "vk.com": "vk.com vk.me userapi.com",
    "ok.ru": "ok.ru",
    "weibo.com": "weibo.com weibo.cn sinaimg.cn",
}


@pytest.mark.parametrize("site", sorted(SHIPPED_NETWORKS))
def test_shipped_list_groups_each_network(site: str) -> None:
    """Each network's asset, API and short-link domains belong to the network's site."""
    p = load_policy(SHIPPED)
    for domain in SHIPPED_NETWORKS[site].split():
        assert site_of(p, f"cdn.{domain}") == f"social_networking/{site}", domain


def test_symlinked_policy_reads_lists_beside_the_real_file(tmp_path: Path) -> None:
    """Through a symlink, domains_files are relative to the file the link points to."""
    text = sub("    domains: [", "    domains_files: [c.txt]\n    domains: [")
    real = write_policy(tmp_path / "real", text, {"c.txt": "[x.com]\ntwimg.com\n"})
    link = tmp_path / "etc" / "policy.yaml"
    link.parent.mkdir()
    link.symlink_to(real)
    p = load_policy(link)
    assert (p.path, site_of(p, "pbs.twimg.com")) == (str(link), "social/x.com")


def test_category_list_with_bom_and_crlf(tmp_path: Path) -> None:
    """A list saved by a Windows editor (byte-order mark, CRLF line ends) loads."""
    text = sub("    domains: [", "    domains_files: [c.txt]\n    domains: [")
    path = write_policy(tmp_path, text)
    (tmp_path / "c.txt").write_bytes(b"\xef\xbb\xbf[x.com]\r\ntwimg.com\r\n")
    assert site_of(load_policy(path), "x.com") == "social/x.com"
    assert site_of(load_policy(path), "pbs.twimg.com") == "social/x.com"


def test_list_named_by_two_categories(tmp_path: Path) -> None:
    """A list shared by two categories fills both; it is hashed at each mention, in order."""
    text = sub(
        "blocked_categories: [social]",
        "  more:\n    domains_files: [c.txt]\n    domains: [y.example]\n"
        "blocked_categories: [social]",
    )
    text = sub("    domains: [facebook", "    domains_files: [c.txt]\n    domains: [facebook", text)
    path = write_policy(tmp_path, text, {"c.txt": "c.example\n"})
    p = load_policy(path)
    assert sorted(p.categories["social"].domains) == ["c.example", "facebook.com", "x.com"]
    assert sorted(p.categories["more"].domains) == ["c.example", "y.example"]
    assert p.sha256 == hashlib.sha256(text.encode() + b"c.example\n" * 2).hexdigest()
