"""Load and validate the policy file: YAML with line marks → frozen `Policy`.

Every problem found is collected as ``(file, line, message)`` and raised
together in one `PolicyError`, so an admin fixes a file in one pass; nothing
is built unless the whole file (and every category list it names) is valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import ipaddress
import re
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy_addons.errors import PolicyError
from proxy_addons.hosts import (
    DomainSet,
    IPAddress,
    IPNetwork,
    NetworkSet,
    normalise_host,
    parse_domain_lines,
    parse_ip,
)
from proxy_addons.policy.model import (
    UTC,
    Access,
    Category,
    Exemption,
    Policy,
    Reminder,
    Revocation,
    Schedule,
    SiteIndex,
)
from proxy_addons.policy.yamlmarks import (
    INT_TAG,
    MAP_TAG,
    MERGE_TAG,
    SEQ_TAG,
    STR_TAG,
    YamlProblem,
    compose,
    describe,
    kind,
    line_of,
    scalar_value,
)

SEP = "\x1f"  # separates category and site in SiteIndex values

# A policy is a few hundred KB at most; the cap keeps a mistaken file (a log,
# a dump) from stalling the proxy. Category lists may legitimately be huge.
MAX_POLICY_BYTES = 5 * 1024 * 1024
MAX_CATEGORY_BYTES = 512 * 1024 * 1024

TOP_KEYS = (
    "version",
    "organisation",
    "contact",
    "policy_url",
    "apply_url",
    "timezone",
    "max_exemption_days",
    "users",
    "categories",
    "blocked_categories",
    "groups",
    "identity",
    "exemptions",
    "reminder",
)
TOP_REQUIRED = (
    "version",
    "organisation",
    "contact",
    "policy_url",
    "categories",
    "blocked_categories",
)
CATEGORY_KEYS = ("description", "domains_files", "domains", "networks")
IDENTITY_KEYS = ("source_addresses",)
EXEMPTION_KEYS = (
    "id",
    "user",
    "group",
    "sites",
    "access",
    "business_case",
    "approved_by",
    "ticket",
    "granted",
    "expires",
    "schedule",
    "revoked",
)
EXEMPTION_REQUIRED = ("id", "sites", "access", "business_case", "approved_by", "granted", "expires")
SCHEDULE_KEYS = ("days", "from", "to", "timezone")
SCHEDULE_REQUIRED = ("days", "from", "to")
REVOKED_KEYS = ("date", "by", "reason")
REMINDER_KEYS = ("every", "text")

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}

# Category names never contain a dot, so an exemption site is unambiguously
# either a category name or a domain.
CATEGORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
EXEMPTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
# Account names as proxyauth reports them (alice, EXAMPLE\alice, alice@example.org).
ACCOUNT_NAME = re.compile(r"^[^\s\x00-\x1f\x7f,]{1,256}$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
DATE_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

ReadFile = Callable[[Path], bytes]


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def load_policy(path: str | Path) -> Policy:
    """Read, validate and build the policy at ``path`` (and the category files it names)."""
    shown = str(path)
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except OSError as e:
        raise PolicyError([(shown, 0, f"cannot read policy file: {e.strerror or e}")]) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError([(shown, 0, f"policy file is larger than {_mb(MAX_POLICY_BYTES)}")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise PolicyError([(shown, line, "policy file is not UTF-8 text")]) from None
    return _Builder(shown, _read_bytes).build(text, data)


def parse_policy_text(text: str, path: str, read_file: ReadFile | None = None) -> Policy:
    """Validate and build a policy from text already in hand (e.g. an edited document).

    ``path`` names the file in messages and anchors relative ``domains_files``;
    ``read_file`` reads category files (default: from disk).
    """
    return _Builder(str(path), read_file or _read_bytes).build(text, text.encode("utf-8"))


def _mb(n: int) -> str:
    return f"{n // (1024 * 1024)} MB"


@dataclass
class _CategoryDraft:
    name: str
    line: int
    description: str = ""
    domains: dict[str, str] = field(default_factory=dict)
    networks: list[IPNetwork] = field(default_factory=list)


class _Builder:
    """One validation pass over one document; collects every error."""

    def __init__(self, path: str, read_file: ReadFile) -> None:
        self.path = path
        # Category files live beside the real file when the policy is reached
        # through a symlink (e.g. /etc/socialgate/policy.yaml -> a checkout).
        p = Path(path)
        self.base = (p.resolve() if p.is_symlink() else p).parent
        self.read_file = read_file
        self.errors: list[tuple[str, int, str]] = []
        self.digest = hashlib.sha256()

    # -- error helpers -------------------------------------------------------

    def err(self, where: Node | int, message: str, path: str | None = None) -> None:
        line = where if isinstance(where, int) else line_of(where)
        self.errors.append((path or self.path, line, message))

    def fail(self) -> PolicyError:
        rank: dict[str, int] = {self.path: 0}
        for p, _, _ in self.errors:
            rank.setdefault(p, len(rank))
        return PolicyError(sorted(self.errors, key=lambda e: (rank[e[0]], e[1])))

    # -- typed readers (None means: wrong, already reported) -----------------

    def mapping(
        self,
        node: Node,
        what: str,
        allowed: Iterable[str] | None,
        required: Iterable[str] = (),
        at: Node | None = None,
        raw_keys: bool = False,
    ) -> dict[str, tuple[Node, Node]] | None:
        """The mapping's entries by key; missing required keys are reported at ``at``."""
        if not isinstance(node, MappingNode):
            self.err(node, f"{what}: expected a mapping, got {kind(node)}")
            return None
        if node.tag != MAP_TAG:
            self.err(node, f"{what}: unsupported YAML tag {node.tag!r}")
            return None
        allowed_keys = tuple(allowed) if allowed is not None else None
        out: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            # YAML 1.1 reads an unquoted 2001:0:0:0:0:0:0:1 as a base-60 integer.
            raw = raw_keys and isinstance(key, ScalarNode) and key.tag == INT_TAG
            if not isinstance(key, ScalarNode) or (key.tag != STR_TAG and not raw):
                if isinstance(key, ScalarNode) and key.tag == MERGE_TAG:
                    self.err(key, f"{what}: YAML merge keys (<<) are not allowed")
                else:
                    self.err(key, f"{what}: keys must be strings, got {kind(key)} (quote it)")
                continue
            name = str(key.value)
            if name in out:
                first = line_of(out[name][0])
                self.err(key, f"{what}: duplicate key {name!r} (first at line {first})")
                continue
            out[name] = (key, value)
            if allowed_keys is not None and name not in allowed_keys:
                self.err(
                    key,
                    f"{what}: unknown key {name!r} (allowed: {', '.join(allowed_keys)})",
                )
        for name in required:
            if name not in out:
                self.err(at or node, f"{what}: missing required key {name!r}")
        return out

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode) or node.tag != SEQ_TAG:
            hint = "; write [] for none" if _is_null(node) else ""
            self.err(node, f"{what}: expected a list, got {kind(node)}{hint}")
            return None
        return list(node.value)

    def scalar(self, node: Node, what: str) -> object:
        """The scalar's value, or ``_BAD`` (reported) when it is not a valid scalar."""
        if not isinstance(node, ScalarNode):
            return _Bad(kind(node))
        try:
            return scalar_value(node)
        except YamlProblem as e:
            self.err(e.line, f"{what}: {e.message}")
            return _BAD_REPORTED

    def string(self, node: Node, what: str, *, empty: bool = False) -> str | None:
        value = self.scalar(node, what)
        if value is _BAD_REPORTED:
            return None
        if not isinstance(value, str):
            got = value.what if isinstance(value, _Bad) else describe(value)
            self.err(node, f"{what}: expected a string, got {got}")
            return None
        if not empty and not value.strip():
            self.err(node, f"{what}: must not be empty")
            return None
        return value

    def integer(self, node: Node, what: str) -> int | None:
        value = self.scalar(node, what)
        if value is _BAD_REPORTED:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            got = value.what if isinstance(value, _Bad) else describe(value)
            self.err(node, f"{what}: expected an integer, got {got}")
            return None
        return value

    def date(self, node: Node, what: str) -> dt.date | None:
        value = self.scalar(node, what)
        if value is _BAD_REPORTED:
            return None
        if isinstance(value, dt.datetime):
            self.err(node, f"{what}: expected a date (YYYY-MM-DD), got {describe(value)}")
            return None
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and DATE_TEXT.match(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError as e:
                self.err(node, f"{what}: invalid date {value!r}: {e}")
                return None
        got = value.what if isinstance(value, _Bad) else describe(value)
        self.err(node, f"{what}: expected a date (YYYY-MM-DD), got {got}")
        return None

    def name(self, node: Node, what: str) -> str | None:
        value = self.string(node, what)
        if value is not None and not ACCOUNT_NAME.match(value):
            self.err(node, f"{what}: {value!r} is not a valid name (no spaces or commas)")
            return None
        return value

    def names(self, node: Node, what: str) -> list[tuple[Node, str]] | None:
        items = self.sequence(node, what)
        if items is None:
            return None
        out: list[tuple[Node, str]] = []
        seen: set[str] = set()
        for item in items:
            value = self.name(item, what)
            if value is None:
                continue
            if value in seen:
                self.err(item, f"{what}: {value!r} is listed twice")
                continue
            seen.add(value)
            out.append((item, value))
        return out

    def timezone(self, node: Node, what: str) -> ZoneInfo | None:
        value = self.string(node, what)
        if value is None:
            return None
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.err(node, f"{what}: unknown time zone {value!r} (use an IANA name such as UTC)")
            return None

    def url(self, node: Node, what: str, schemes: tuple[str, ...]) -> str | None:
        value = self.string(node, what)
        if value is None:
            return None
        parts = urlsplit(value.strip())
        ok = parts.scheme in schemes and (parts.netloc or parts.scheme == "mailto")
        if not ok or any(c.isspace() for c in value.strip()):
            allowed = " or ".join(f"{s}:" for s in schemes)
            self.err(node, f"{what}: {value!r} is not a URL ({allowed})")
            return None
        return value.strip()

    # -- the document --------------------------------------------------------

    def build(self, text: str, policy_bytes: bytes) -> Policy:
        self.digest.update(policy_bytes)
        if len(policy_bytes) > MAX_POLICY_BYTES:
            self.err(0, f"policy file is larger than {_mb(MAX_POLICY_BYTES)}")
            raise self.fail()
        try:
            root = compose(text)
        except YamlProblem as e:
            self.err(e.line, e.message)
            raise self.fail() from None
        if root is None:
            self.err(0, "policy file is empty")
            raise self.fail()
        if not isinstance(root, MappingNode):
            self.err(root, f"the top level must be a mapping of settings, got {kind(root)}")
            raise self.fail()
        top = self.mapping(root, "policy", TOP_KEYS, TOP_REQUIRED)
        assert top is not None
        policy = self._document(top)
        if self.errors or policy is None:
            raise self.fail()
        return policy

    def _document(self, top: dict[str, tuple[Node, Node]]) -> Policy | None:
        def get(key: str) -> Node | None:
            pair = top.get(key)
            return pair[1] if pair else None

        version = None
        if (node := get("version")) is not None:
            version = self.integer(node, "version")
            if version is not None and version != 1:
                self.err(node, f"version: unsupported version {version} (expected 1)")
        organisation = self._opt(get("organisation"), lambda n: self.string(n, "organisation"))
        contact = self._opt(get("contact"), lambda n: self.string(n, "contact"))
        policy_url = self._opt(
            get("policy_url"), lambda n: self.url(n, "policy_url", ("https", "http"))
        )
        apply_url = self._opt(
            get("apply_url"), lambda n: self.url(n, "apply_url", ("https", "http", "mailto"))
        )
        timezone = self._opt(get("timezone"), lambda n: self.timezone(n, "timezone"))
        max_days = 365
        if (node := get("max_exemption_days")) is not None:
            value = self.integer(node, "max_exemption_days")
            if value is not None and not 1 <= value <= 36500:
                self.err(node, f"max_exemption_days: {value} is not between 1 and 36500")
            elif value is not None:
                max_days = value

        users: set[str] | None = None
        if (node := get("users")) is not None:
            listed = self.names(node, "users")
            users = {u for _, u in listed} if listed is not None else None

        categories = self._categories(get("categories"))
        blocked = self._blocked(get("blocked_categories"), categories)
        source_addresses = self._identity(get("identity"))
        known_users = None
        if users is not None:
            known_users = users | set(source_addresses.values())
        groups = self._groups(get("groups"), known_users)
        exemptions = self._exemptions(
            get("exemptions"), categories, groups, known_users, timezone or UTC, max_days
        )
        reminder = None
        if "reminder" in top:
            reminder = self._reminder(top["reminder"][1], top["reminder"][0])

        if self.errors:
            return None
        assert version is not None
        assert categories is not None
        assert groups is not None
        assert organisation is not None
        assert contact is not None
        assert policy_url is not None
        assert exemptions is not None
        return self._assemble(
            version=version,
            organisation=organisation,
            contact=contact,
            policy_url=policy_url,
            apply_url=apply_url,
            timezone=timezone or UTC,
            max_days=max_days,
            categories=categories,
            blocked=blocked,
            groups=groups,
            source_addresses=source_addresses,
            exemptions=exemptions,
            reminder=reminder,
        )

    @staticmethod
    def _opt[T](node: Node | None, read: Callable[[Node], T | None]) -> T | None:
        return None if node is None else read(node)

    # -- categories ----------------------------------------------------------

    def _categories(self, node: Node | None) -> dict[str, _CategoryDraft] | None:
        if node is None:
            return None
        spec = self.mapping(node, "categories", None)
        if spec is None:
            return None
        out: dict[str, _CategoryDraft] = {}
        for name, (key, value) in spec.items():
            what = f"category {name}"
            if not CATEGORY_NAME.match(name):
                # Still defined below, so references to it do not add errors of their own.
                self.err(key, f"{what}: name must be letters, digits, '_' or '-' (no dots)")
            draft = _CategoryDraft(name, line_of(key))
            out[name] = draft
            fields = self.mapping(value, what, CATEGORY_KEYS)
            if fields is None:
                continue
            if "description" in fields:
                draft.description = self.string(fields["description"][1], what) or ""
            if "domains_files" in fields:
                files = self.sequence(fields["domains_files"][1], f"{what}: domains_files")
                for item in files or ():
                    rel = self.string(item, f"{what}: domains_files")
                    if rel is not None:
                        draft.domains = _merge(draft.domains, self._category_file(item, rel))
            if "domains" in fields:
                items = self.sequence(fields["domains"][1], f"{what}: domains")
                inline: dict[str, str] = {}
                for item in items or ():
                    text = self.string(item, f"{what}: domains")
                    if text is None:
                        continue
                    # Same spellings as in list files: "*.x.com" and ".x.com" mean x.com.
                    bare = text.strip().removeprefix("*.").removeprefix(".")
                    domain = _domain(bare)
                    if domain is None:
                        self.err(item, f"{what}: {text!r} is not a domain name")
                        continue
                    inline.setdefault(domain, domain)
                draft.domains = _merge(draft.domains, inline)
            if "networks" in fields:
                nets = self.sequence(fields["networks"][1], f"{what}: networks")
                for item in nets or ():
                    text = self.string(item, f"{what}: networks")
                    if text is None:
                        continue
                    try:
                        draft.networks.append(ipaddress.ip_network(text.strip(), strict=True))
                    except ValueError as e:
                        self.err(item, f"{what}: bad CIDR {text!r}: {e}")
        return out

    def _category_file(self, node: Node, rel: str) -> dict[str, str] | None:
        # Read (and hashed) at every mention, so each category owns its dict.
        path = self.base / rel
        shown = str(path)
        try:
            data = self.read_file(path)
        except OSError as e:
            self.err(node, f"cannot read category file {shown!r}: {e.strerror or e}")
            return None
        self.digest.update(data)
        if len(data) > MAX_CATEGORY_BYTES:
            self.err(0, f"category file is larger than {_mb(MAX_CATEGORY_BYTES)}", shown)
            return None
        # Lines are decoded as they are read: a 1M-line list never exists
        # twice in memory as text.
        # utf-8-sig: lists saved by Windows editors start with a byte-order mark.
        lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=None)
        try:
            entries, problems = parse_domain_lines(lines)
        except UnicodeDecodeError:
            try:
                data.decode("utf-8")
                line = 0
            except UnicodeDecodeError as e:
                line = data.count(b"\n", 0, e.start) + 1
            self.err(line, "category file is not UTF-8 text", shown)
            return None
        for lineno, message in problems:
            self.err(lineno, message, shown)
        return entries

    def _blocked(
        self, node: Node | None, categories: dict[str, _CategoryDraft] | None
    ) -> tuple[str, ...]:
        if node is None:
            return ()
        items = self.sequence(node, "blocked_categories")
        if items is None:
            return ()
        out: list[str] = []
        for item in items:
            name = self.string(item, "blocked_categories")
            if name is None:
                continue
            if categories is not None and name not in categories:
                self.err(item, f"blocked_categories: unknown category {name!r}{_known(categories)}")
            elif name in out:
                self.err(item, f"blocked_categories: {name!r} is listed twice")
            else:
                out.append(name)
        if not items:
            self.err(node, "blocked_categories: is empty, so nothing would be blocked")
        return tuple(out)

    # -- who -----------------------------------------------------------------

    def _identity(self, node: Node | None) -> dict[IPAddress, str]:
        out: dict[IPAddress, str] = {}
        if node is None:
            return out
        fields = self.mapping(node, "identity", IDENTITY_KEYS)
        if fields is None or "source_addresses" not in fields:
            return out
        spec = self.mapping(
            fields["source_addresses"][1], "identity.source_addresses", None, raw_keys=True
        )
        for text, (key, value) in (spec or {}).items():
            what = "identity.source_addresses"
            user = self.name(value, f"{what}: {text}")
            try:
                ip = ipaddress.ip_address(text.strip())
            except ValueError:
                hint = " (a single address, not a network)" if "/" in text else ""
                self.err(key, f"{what}: bad source address {text!r}{hint}")
                continue
            if ip in out:
                self.err(key, f"{what}: {text!r} is listed twice (as {ip})")
                continue
            if user is not None:
                out[ip] = user
        return out

    def _groups(self, node: Node | None, known: set[str] | None) -> dict[str, frozenset[str]]:
        out: dict[str, frozenset[str]] = {}
        if node is None:
            return out
        spec = self.mapping(node, "groups", None)
        for name, (key, value) in (spec or {}).items():
            what = f"group {name}"
            if not ACCOUNT_NAME.match(name):
                self.err(key, f"{what}: {name!r} is not a valid group name")
                continue
            members = self.names(value, what)
            if members is None:
                continue
            for item, member in members:
                if known is not None and member not in known:
                    self.err(item, f"{what}: unknown user {member!r} (not in users)")
            out[name] = frozenset(m for _, m in members)
        return out

    # -- exemptions ----------------------------------------------------------

    def _exemptions(
        self,
        node: Node | None,
        categories: dict[str, _CategoryDraft] | None,
        groups: dict[str, frozenset[str]],
        known: set[str] | None,
        timezone: ZoneInfo,
        max_days: int,
    ) -> list[Exemption] | None:
        out: list[Exemption] = []
        if node is None:
            return out
        items = self.sequence(node, "exemptions")
        if items is None:
            return None
        ids: dict[str, int] = {}
        for item in items:
            ex = self._exemption(item, categories, groups, known, timezone, max_days, ids)
            if ex is not None:
                out.append(ex)
        return out

    def _exemption(
        self,
        node: Node,
        categories: dict[str, _CategoryDraft] | None,
        groups: dict[str, frozenset[str]],
        known: set[str] | None,
        timezone: ZoneInfo,
        max_days: int,
        ids: dict[str, int],
    ) -> Exemption | None:
        before = len(self.errors)
        fields = self.mapping(node, "exemption", EXEMPTION_KEYS, EXEMPTION_REQUIRED)
        if fields is None:
            return None

        def get(key: str) -> Node | None:
            pair = fields.get(key)
            return pair[1] if pair else None

        ex_id = None
        if (n := get("id")) is not None:
            ex_id = self.string(n, "exemption id")
            if ex_id is not None and not EXEMPTION_ID.match(ex_id):
                self.err(n, f"exemption id: {ex_id!r} must be letters, digits and . _ : / -")
                ex_id = None
            elif ex_id is not None and ex_id in ids:
                self.err(n, f"duplicate exemption id {ex_id!r} (first at line {ids[ex_id]})")
            elif ex_id is not None:
                ids[ex_id] = line_of(n)
        what = f"exemption {ex_id}" if ex_id else "exemption"

        user = group = None
        user_node, group_node = get("user"), get("group")
        if (user_node is None) == (group_node is None):
            self.err(node, f"{what}: give exactly one of 'user' or 'group'")
        if user_node is not None:
            user = self.name(user_node, f"{what}: user")
            if user is not None and known is not None and user not in known:
                self.err(user_node, f"{what}: unknown user {user!r} (not in users)")
        if group_node is not None:
            group = self.name(group_node, f"{what}: group")
            if group is not None and group not in groups:
                self.err(group_node, f"{what}: unknown group {group!r}{_known(groups)}")

        sites: list[str] = []
        if (n := get("sites")) is not None:
            for item in self.sequence(n, f"{what}: sites") or ():
                site = self._site(item, what, categories)
                if site is not None and site in sites:
                    self.err(item, f"{what}: site {site!r} is listed twice")
                elif site is not None:
                    sites.append(site)
            if isinstance(n, SequenceNode) and not n.value:
                self.err(n, f"{what}: sites must name at least one site or category")

        access = None
        if (n := get("access")) is not None:
            text = self.string(n, f"{what}: access")
            if text is not None:
                try:
                    access = Access(text)
                except ValueError:
                    self.err(n, f"{what}: access must be 'full' or 'read-only', got {text!r}")

        business_case = self._opt(
            get("business_case"), lambda n: self.string(n, f"{what}: business_case")
        )
        approved_by = self._opt(get("approved_by"), lambda n: self.name(n, f"{what}: approved_by"))
        ticket = None
        if (n := get("ticket")) is not None:
            value = self.scalar(n, f"{what}: ticket")
            if isinstance(value, int) and not isinstance(value, bool):
                ticket = str(value)  # CHG numbers are often written bare
            elif value is not _BAD_REPORTED:
                ticket = self.string(n, f"{what}: ticket")
        granted = self._opt(get("granted"), lambda n: self.date(n, f"{what}: granted"))
        expires = self._opt(get("expires"), lambda n: self.date(n, f"{what}: expires"))
        if granted is not None and expires is not None:
            n = get("expires")
            assert n is not None
            days = (expires - granted).days + 1
            if expires < granted:
                self.err(n, f"{what}: expires {expires} is before granted {granted}")
            elif days > max_days:
                self.err(
                    n,
                    f"{what}: lasts {days} days, more than max_exemption_days ({max_days})",
                )
        schedule = revoked = None
        if "schedule" in fields:
            schedule = self._schedule(*fields["schedule"][::-1], what, timezone)
        if "revoked" in fields:
            revoked = self._revoked(*fields["revoked"][::-1], what)

        if len(self.errors) != before:
            return None
        assert ex_id is not None
        assert access is not None
        assert business_case is not None
        assert approved_by is not None
        assert granted is not None
        assert expires is not None
        return Exemption(
            id=ex_id,
            user=user,
            group=group,
            sites=tuple(sites),
            access=access,
            business_case=business_case,
            approved_by=approved_by,
            granted=granted,
            expires=expires,
            ticket=ticket,
            schedule=schedule,
            revoked=revoked,
            line=line_of(node),
        )

    def _site(
        self, node: Node, what: str, categories: dict[str, _CategoryDraft] | None
    ) -> str | None:
        text = self.string(node, f"{what}: sites")
        if text is None:
            return None
        if categories is not None and text in categories:
            return text
        domain = _domain(text)
        if domain is None:
            if "." not in text.strip(".") and CATEGORY_NAME.match(text):
                self.err(
                    node,
                    f"{what}: unknown category {text!r}: neither a valid domain nor a category"
                    f" name{_known(categories or {})}",
                )
            else:
                self.err(
                    node, f"{what}: site {text!r} is neither a valid domain nor a category name"
                )
            return None
        return domain

    def _schedule(self, node: Node, key: Node, what: str, default_tz: ZoneInfo) -> Schedule | None:
        what = f"{what}: schedule"
        fields = self.mapping(node, what, SCHEDULE_KEYS, SCHEDULE_REQUIRED, at=key)
        if fields is None:
            return None
        ok = True
        days: set[int] = set()
        if "days" in fields:
            items = self.sequence(fields["days"][1], f"{what}: days")
            ok = items is not None and ok
            for item in items or ():
                day = self.string(item, f"{what}: days")
                if day is None:
                    ok = False
                elif day not in DAYS:
                    self.err(item, f"{what}: unknown day {day!r} (use {', '.join(DAYS)})")
                    ok = False
                elif DAYS[day] in days:
                    self.err(item, f"{what}: day {day!r} is listed twice")
                    ok = False
                else:
                    days.add(DAYS[day])
            if items is not None and not items:
                self.err(fields["days"][1], f"{what}: days must name at least one day")
                ok = False
        start = (
            self._clock(fields["from"][1], f"{what}: from", end=False) if "from" in fields else None
        )
        end = self._clock(fields["to"][1], f"{what}: to", end=True) if "to" in fields else None
        if start is not None and end is not None and start == end:
            self.err(fields["to"][1], f"{what}: 'from' and 'to' are equal (an empty window)")
            ok = False
        tz = default_tz
        if "timezone" in fields:
            zone = self.timezone(fields["timezone"][1], f"{what}: timezone")
            ok = zone is not None and ok
            tz = zone or default_tz
        if not ok or start is None or end is None:
            return None
        return Schedule(frozenset(days), start, end, tz)

    def _clock(self, node: Node, what: str, *, end: bool) -> dt.time | None:
        # YAML 1.1 reads an unquoted 18:00 as the base-60 integer 1080; the
        # text as written is what the admin meant (and what YAML 1.2 editors show).
        if isinstance(node, ScalarNode) and node.tag in (STR_TAG, INT_TAG):
            text = str(node.value)
        else:
            text = self.string(node, what) or ""
            if not text:
                return None
        if end and text == "24:00":
            return dt.time(0, 0)
        m = HHMM.match(text)
        if m is None:
            limit = "00:00 to 24:00" if end else "00:00 to 23:59"
            self.err(node, f"{what}: {text!r} is not a time HH:MM ({limit})")
            return None
        return dt.time(int(m.group(1)), int(m.group(2)))

    def _revoked(self, node: Node, key: Node, what: str) -> Revocation | None:
        what = f"{what}: revoked"
        fields = self.mapping(node, what, REVOKED_KEYS, REVOKED_KEYS, at=key)
        if fields is None:
            return None
        date = self.date(fields["date"][1], f"{what}: date") if "date" in fields else None
        by = self.name(fields["by"][1], f"{what}: by") if "by" in fields else None
        reason = self.string(fields["reason"][1], f"{what}: reason") if "reason" in fields else None
        if date is None or by is None or reason is None:
            return None
        return Revocation(date, by, reason)

    def _reminder(self, node: Node, key: Node) -> Reminder | None:
        fields = self.mapping(node, "reminder", REMINDER_KEYS, REMINDER_KEYS, at=key)
        if fields is None:
            return None
        every = None
        if "every" in fields:
            n = fields["every"][1]
            text = self.string(n, "reminder: every")
            m = DURATION.match(text.strip()) if text is not None else None
            if text is not None and m is None:
                self.err(n, f"reminder: every: {text!r} is not a duration like 30m, 24h or 7d")
            elif m is not None:
                every = dt.timedelta(**{DURATION_UNITS[m.group(2)]: int(m.group(1))})
        text = self.string(fields["text"][1], "reminder: text") if "text" in fields else None
        if every is None or text is None:
            return None
        return Reminder(every, text)

    # -- the frozen result ---------------------------------------------------

    def _assemble(
        self,
        *,
        version: int,
        organisation: str,
        contact: str,
        policy_url: str,
        apply_url: str | None,
        timezone: ZoneInfo,
        max_days: int,
        categories: dict[str, _CategoryDraft],
        blocked: tuple[str, ...],
        groups: dict[str, frozenset[str]],
        source_addresses: dict[IPAddress, str],
        exemptions: list[Exemption],
        reminder: Reminder | None,
    ) -> Policy:
        index: dict[str, str] = {}
        networks: list[tuple[IPNetwork, str]] = []
        for name in blocked:
            draft = categories[name]
            _index_category(index, name, draft.domains)
            networks.extend((net, f"{name}{SEP}{net}") for net in draft.networks)
        built = {
            name: Category(name, d.description, DomainSet.adopt(d.domains), tuple(d.networks))
            for name, d in categories.items()
        }

        user_groups: dict[str, list[str]] = {}
        for group, members in groups.items():
            for member in sorted(members):
                user_groups.setdefault(member, []).append(group)
        by_user: dict[str, list[Exemption]] = {}
        for ex in exemptions:
            subjects = [ex.user] if ex.user is not None else sorted(groups[ex.group or ""])
            for user in subjects:
                mine = by_user.setdefault(user, [])
                if not mine or mine[-1] is not ex:
                    mine.append(ex)

        return Policy(
            path=self.path,
            sha256=self.digest.hexdigest(),
            version=version,
            organisation=organisation,
            contact=contact,
            policy_url=policy_url,
            categories=types.MappingProxyType(built),
            blocked_categories=blocked,
            groups=types.MappingProxyType(groups),
            source_addresses=types.MappingProxyType(source_addresses),
            exemptions=tuple(exemptions),
            reminder=reminder,
            index=SiteIndex(DomainSet.adopt(index), NetworkSet(networks)),
            exemptions_by_user=types.MappingProxyType(
                {u: tuple(exs) for u, exs in by_user.items()}
            ),
            user_groups=types.MappingProxyType({u: tuple(g) for u, g in user_groups.items()}),
            timezone=timezone,
            apply_url=apply_url,
            max_exemption_days=max_days,
        )


def _merge(into: dict[str, str], entries: dict[str, str] | None) -> dict[str, str]:
    """``into`` plus the entries it lacks (earlier sources win); adopts ``entries`` when empty."""
    if not entries:
        return into
    if not into:
        return entries  # no copy: a category is usually one big list
    for domain, site in entries.items():
        into.setdefault(domain, site)
    return into


def _index_category(index: dict[str, str], category: str, domains: Mapping[str, str]) -> None:
    """Add a category's domains to the index; the first blocked category listing one wins."""
    prefix = category + SEP
    shared: dict[str, str] = {}  # one value string per [site] group, not per entry
    first = not index
    for domain, site in domains.items():
        if not first and domain in index:
            continue
        if site == domain:
            # An empty site means "the entry itself" (see decide.classify): one shared
            # string instead of a million "category\x1fdomain" copies (~70 MB at 1M).
            index[domain] = prefix
        else:
            value = shared.get(site)
            if value is None:
                value = shared[site] = prefix + site
            index[domain] = value


def _domain(text: str) -> str | None:
    """A normalised domain name (not an IP, at least two labels), else None."""
    domain = normalise_host(text)
    if domain is None or parse_ip(domain) is not None or "." not in domain:
        return None
    return domain


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _known(names: Mapping[str, object]) -> str:
    if not names:
        return " (none defined)"
    return f" (defined: {', '.join(names)})"


class _Bad:
    """A node that is not a scalar (a list or mapping where a value belongs)."""

    def __init__(self, what: str) -> None:
        self.what = what


_BAD_REPORTED = object()
