"""Typed reading of the composed YAML tree, collecting every problem on the way.

Each reader returns the value, or None when the node is wrong, after noting
a `Problem` at the node's line; the section validators carry on so an admin
sees every problem of a file in one pass. Nothing here knows what a policy is.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy_addons.errors import PolicyError
from proxy_addons.policy.schema import ACCOUNT_NAME
from proxy_addons.policy.yamlmarks import (
    INT_TAG,
    MAP_TAG,
    MERGE_TAG,
    SEQ_TAG,
    STR_TAG,
    YamlProblem,
    describe,
    kind,
    line_of,
    scalar_value,
)
from proxy_addons.problems import Problem

DATE_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

Fields = dict[str, tuple[Node, Node]]  # key -> (key node, value node)


class NodeReader:
    """One validation pass over one document: typed readers and the problems found."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[Problem] = []

    # -- problems ------------------------------------------------------------

    def err(self, where: Node | int, message: str, path: str | None = None) -> None:
        line = where if isinstance(where, int) else line_of(where)
        self.errors.append(Problem(path or self.path, line, message))

    def fail(self) -> PolicyError:
        """Every problem, the policy file's first, each file's in line order."""
        rank: dict[str, int] = {self.path: 0}
        for p, _, _ in self.errors:
            rank.setdefault(p, len(rank))
        return PolicyError(sorted(self.errors, key=lambda e: (rank[e[0]], e[1])))

    # -- containers ----------------------------------------------------------

    def mapping(
        self,
        node: Node,
        what: str,
        allowed: Iterable[str] | None,
        required: Iterable[str] = (),
        at: Node | None = None,
        raw_keys: bool = False,
    ) -> Fields | None:
        """The mapping's entries by key; missing required keys are reported at ``at``."""
        if not isinstance(node, MappingNode):
            self.err(node, f"{what}: expected a mapping, got {kind(node)}")
            return None
        if node.tag != MAP_TAG:
            self.err(node, f"{what}: unsupported YAML tag {node.tag!r}")
            return None
        allowed_keys = tuple(allowed) if allowed is not None else None
        out: Fields = {}
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

    # -- scalars -------------------------------------------------------------

    def scalar(self, node: Node, what: str) -> object:
        """The scalar's value, or ``BAD_REPORTED`` when it is not a valid scalar."""
        if not isinstance(node, ScalarNode):
            return _Bad(kind(node))
        try:
            return scalar_value(node)
        except YamlProblem as e:
            self.err(e.line, f"{what}: {e.message}")
            return BAD_REPORTED

    def string(self, node: Node, what: str, *, empty: bool = False) -> str | None:
        value = self.scalar(node, what)
        if value is BAD_REPORTED:
            return None
        if not isinstance(value, str):
            self.err(node, f"{what}: expected a string, got {_got(value)}")
            return None
        if not empty and not value.strip():
            self.err(node, f"{what}: must not be empty")
            return None
        return value

    def integer(self, node: Node, what: str) -> int | None:
        value = self.scalar(node, what)
        if value is BAD_REPORTED:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.err(node, f"{what}: expected an integer, got {_got(value)}")
            return None
        return value

    def date(self, node: Node, what: str) -> dt.date | None:
        value = self.scalar(node, what)
        if value is BAD_REPORTED:
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
        self.err(node, f"{what}: expected a date (YYYY-MM-DD), got {_got(value)}")
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

    @staticmethod
    def opt[T](node: Node | None, read: Callable[[Node], T | None]) -> T | None:
        """``read(node)`` for a key that may be absent (None then)."""
        return None if node is None else read(node)


def value_of(fields: Fields, key: str) -> Node | None:
    """The value node of ``key``, None when the key is absent."""
    pair = fields.get(key)
    return pair[1] if pair else None


def known(names: Mapping[str, object]) -> str:
    """The defined names, for an "unknown …" message."""
    if not names:
        return " (none defined)"
    return f" (defined: {', '.join(names)})"


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


class _Bad:
    """A node that is not a scalar (a list or mapping where a value belongs)."""

    def __init__(self, what: str) -> None:
        self.what = what


def _got(value: object) -> str:
    return value.what if isinstance(value, _Bad) else describe(value)


# A scalar whose problem is already reported: readers return None without a second message.
BAD_REPORTED = object()
