"""The invalid-policy table: each policy is refused with one error at a known line.

Rows are (id, text, line, message fragment). The policy loading tests check every row; the
schema tests reuse the rows JSON Schema can express.
"""

from __future__ import annotations

from tests.support.policy_texts import SCHEDULE, VALID, sub

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]
"""

INVALID = [
    # top level and YAML itself
    ("empty file", "", 0, "policy file is empty"),
    ("comments only", "# nothing here\n", 0, "policy file is empty"),
    ("top level is a list", "- version: 1\n", 1, "top level must be a mapping"),
    ("top level is a scalar", "hello\n", 1, "top level must be a mapping"),
    ("invalid YAML: unclosed flow list", sub("[x.com]", "[x.com"), 13, "invalid YAML"),
    ("invalid YAML: bad indentation", sub("    user: alice", "   user: alice"), 11, "invalid YAML"),
    ("invalid YAML: tab indentation", sub("    user: alice", "\tuser: alice"), 11, "invalid YAML"),
    ("invalid YAML: NUL character", VALID + "x: \x00\n", 18, "not allowed"),
    ("two documents", VALID + "---\nversion: 1\n", 18, "single document"),
    ("billion laughs", BILLION_LAUGHS, 1, "YAML aliases are not allowed"),
    ("alias", VALID + "reminder: *r\n", 18, "YAML aliases are not allowed"),
    ("merge key", sub("    user: alice", "    user: alice\n    <<: {a: 1}"), 12, "merge keys"),
    ("deep nesting", "a: " + "[" * 200 + "]" * 200 + "\n", 1, "nested more than"),
    ("duplicate key", VALID + "organisation: Other\n", 18, "duplicate key 'organisation'"),
    (
        "duplicate key in exemption",
        sub("    access: full", "    access: full\n    access: full"),
        14,
        "duplicate key 'access' (first at line 13)",
    ),
    ("non-string key", VALID + "1: x\n", 18, "keys must be strings"),
    ("boolean key", VALID + "yes: x\n", 18, "keys must be strings"),
    (
        "unsafe python tag",
        sub("approved_by: d.smith", "approved_by: !!python/object/apply:os.system [ls]"),
        15,
        "expected a string",
    ),
    (
        "unknown scalar tag",
        sub("approved_by: d.smith", "approved_by: !!python/name:os.system"),
        15,
        "invalid value",
    ),
    # top-level keys and types
    (
        "unknown top-level key",
        VALID + "colour: blue\n",
        18,
        "unknown key 'colour' (allowed: version",
    ),
    ("version is not 1", sub("version: 1", "version: 2"), 1, "unsupported version 2"),
    ("version wrong type", sub("version: 1", "version: one"), 1, "expected an integer"),
    ("missing contact", sub("contact: it@example.org\n", ""), 1, "missing required key 'contact'"),
    (
        "organisation is a list",
        sub("organisation: Org", "organisation: [Org]"),
        2,
        "expected a string, got a list",
    ),
    ("policy_url not a URL", sub("https://example.org/policy", "intranet page"), 4, "not a URL"),
    ("bad top-level time zone", VALID + "timezone: Europe/Londn\n", 18, "unknown time zone"),
    ("max_exemption_days zero", VALID + "max_exemption_days: 0\n", 18, "not between 1 and 36500"),
    # categories
    (
        "unknown category key",
        sub("    domains: [", "    lists: [a]\n    domains: ["),
        7,
        "unknown key 'lists'",
    ),
    (
        "category name with a dot",
        sub("  social:", "  social.net:").replace("[social]", "[social.net]"),
        6,
        "no dots",
    ),
    (
        "bad inline domain",
        sub("[facebook.com, x.com]", "[facebook.com, 'x com']"),
        7,
        "'x com' is not a domain name",
    ),
    (
        "bad CIDR (host bits)",
        sub(
            "    domains: [facebook.com, x.com]",
            "    domains: [facebook.com, x.com]\n    networks: [10.0.0.1/8]",
        ),
        8,
        "bad CIDR '10.0.0.1/8'",
    ),
    (
        "bad CIDR (garbage)",
        sub(
            "    domains: [facebook.com, x.com]",
            "    domains: [facebook.com, x.com]\n    networks: [10.0.0.0/33]",
        ),
        8,
        "bad CIDR",
    ),
    (
        "missing category file",
        sub("    domains: [", "    domains_files: [nope.txt]\n    domains: ["),
        7,
        "cannot read category file",
    ),
    (
        "unknown blocked category",
        sub("[social]", "[social, gaming]"),
        8,
        "unknown category 'gaming'",
    ),
    ("blocked category twice", sub("[social]", "[social, social]"), 8, "listed twice"),
    ("nothing blocked", sub("[social]", "[]"), 8, "nothing would be blocked"),
    # identity, users, groups
    (
        "bad source address",
        VALID + "identity:\n  source_addresses:\n    10.0.0.300: kiosk\n",
        20,
        "bad source address '10.0.0.300'",
    ),
    (
        "source address is a network",
        VALID + "identity:\n  source_addresses:\n    10.0.0.0/8: k\n",
        20,
        "not a network",
    ),
    (
        "unknown identity key",
        VALID + "identity:\n  proxyauth: yes\n",
        19,
        "unknown key 'proxyauth'",
    ),
    ("unknown user (users listed)", VALID + "users: [bob]\n", 11, "unknown user 'alice'"),
    (
        "unknown group member (users listed)",
        VALID + "users: [alice]\ngroups:\n  g: [alice, eve]\n",
        20,
        "unknown user 'eve'",
    ),
    ("group member twice", VALID + "groups:\n  g: [bob, bob]\n", 19, "listed twice"),
    ("group is not a list", VALID + "groups:\n  g: bob\n", 19, "expected a list"),
    # exemptions
    (
        "exemptions is null",
        sub("exemptions:\n", "exemptions:\nx:\n").split("x:\n")[0],
        9,
        "write [] for none",
    ),
    (
        "unknown exemption key",
        sub("    access: full", "    access: full\n    reason: x"),
        14,
        "unknown key 'reason'",
    ),
    (
        "missing business case",
        sub("    business_case: Press statements\n", ""),
        10,
        "missing required key 'business_case'",
    ),
    (
        "empty business case",
        sub("business_case: Press statements", "business_case: ' '"),
        14,
        "must not be empty",
    ),
    (
        "null business case",
        sub("business_case: Press statements", "business_case:"),
        14,
        "expected a string, got nothing",
    ),
    (
        "missing approver",
        sub("    approved_by: d.smith\n", ""),
        10,
        "missing required key 'approved_by'",
    ),
    ("missing expiry", sub("    expires: 2026-12-31\n", ""), 10, "missing required key 'expires'"),
    (
        "missing grant date",
        sub("    granted: 2026-01-10\n", ""),
        10,
        "missing required key 'granted'",
    ),
    ("missing id", sub("  - id: EX-1\n    user", "  - user"), 10, "missing required key 'id'"),
    ("missing sites", sub("    sites: [x.com]\n", ""), 10, "missing required key 'sites'"),
    ("empty sites", sub("sites: [x.com]", "sites: []"), 12, "at least one"),
    ("missing access", sub("    access: full\n", ""), 10, "missing required key 'access'"),
    ("bad access", sub("access: full", "access: readonly"), 13, "'full' or 'read-only'"),
    (
        "expiry before grant",
        sub("expires: 2026-12-31", "expires: 2025-12-31"),
        17,
        "expires 2025-12-31 is before granted 2026-01-10",
    ),
    (
        "longer than max_exemption_days",
        sub("expires: 2026-12-31", "expires: 2027-01-10"),
        17,
        "lasts 366 days, more than max_exemption_days (365)",
    ),
    (
        "longer than a custom maximum",
        VALID + "max_exemption_days: 30\n",
        17,
        "more than max_exemption_days (30)",
    ),
    (
        "date and time instead of date",
        sub("granted: 2026-01-10", "granted: 2026-01-10 10:00:00"),
        16,
        "expected a date (YYYY-MM-DD), got a date and time",
    ),
    (
        "impossible date",
        sub("granted: 2026-01-10", "granted: 2026-02-30"),
        16,
        "day is out of range",
    ),
    (
        "impossible quoted date",
        sub("granted: 2026-01-10", "granted: '2026-02-30'"),
        16,
        "invalid date",
    ),
    ("integer date", sub("granted: 2026-01-10", "granted: 20260110"), 16, "expected a date"),
    ("duplicate id", VALID + VALID.split("exemptions:\n")[1], 18, "duplicate exemption id 'EX-1'"),
    (
        "both user and group",
        sub("    user: alice", "    user: alice\n    group: g") + "groups:\n  g: [bob]\n",
        10,
        "exactly one of 'user' or 'group'",
    ),
    ("neither user nor group", sub("    user: alice\n", ""), 10, "exactly one of"),
    ("unknown group", sub("user: alice", "group: press"), 11, "unknown group 'press'"),
    (
        "unknown category as site",
        sub("sites: [x.com]", "sites: [socal]"),
        12,
        "unknown category 'socal'",
    ),
    (
        "site neither domain nor category",
        sub("sites: [x.com]", "sites: ['x .com']"),
        12,
        "neither a valid domain nor a category name",
    ),
    (
        "IP address as site",
        sub("sites: [x.com]", "sites: [10.0.0.1]"),
        12,
        "neither a valid domain",
    ),
    ("site listed twice", sub("sites: [x.com]", "sites: [x.com, X.COM.]"), 12, "listed twice"),
    ("user name with a space", sub("user: alice", "user: alice smith"), 11, "not a valid name"),
    (
        "revoked without reason",
        VALID + "    revoked: {date: 2026-02-01, by: d.smith}\n",
        18,
        "missing required key 'reason'",
    ),
    # schedules
    (
        "bad schedule day",
        VALID + SCHEDULE.replace("[mon, tue]", "[mon, funday]"),
        19,
        "unknown day 'funday'",
    ),
    (
        "schedule day twice",
        VALID + SCHEDULE.replace("[mon, tue]", "[mon, mon]"),
        19,
        "listed twice",
    ),
    ("schedule without days", VALID + SCHEDULE.replace("[mon, tue]", "[]"), 19, "at least one day"),
    ("bad schedule time", VALID + SCHEDULE.replace('"08:00"', '"8am"'), 20, "not a time HH:MM"),
    ("hour 24 as start", VALID + SCHEDULE.replace('"08:00"', '"24:00"'), 20, "not a time HH:MM"),
    ("minute 60", VALID + SCHEDULE.replace('"18:00"', '"18:60"'), 21, "not a time HH:MM"),
    ("from equals to", VALID + SCHEDULE.replace('"08:00"', '"18:00"'), 21, "are equal"),
    (
        "schedule without to",
        VALID + SCHEDULE.replace('      to: "18:00"\n', ""),
        18,
        "missing required key 'to'",
    ),
    (
        "bad schedule time zone",
        VALID + SCHEDULE + "      timezone: Mars/Olympus\n",
        22,
        "unknown time zone 'Mars/Olympus'",
    ),
    (
        "time zone path escape",
        VALID + SCHEDULE + "      timezone: ../../etc/passwd\n",
        22,
        "unknown time zone",
    ),
    # reminder
    (
        "bad reminder interval",
        VALID + "reminder:\n  every: daily\n  text: Be nice\n",
        19,
        "not a duration",
    ),
    (
        "reminder without text",
        VALID + "reminder:\n  every: 24h\n",
        18,
        "missing required key 'text'",
    ),
    (
        "empty reminder text",
        VALID + "reminder:\n  every: 24h\n  text: ''\n",
        20,
        "must not be empty",
    ),
]
