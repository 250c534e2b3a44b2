"""YAML composition that keeps line marks and refuses what makes YAML dangerous.

The policy is composed into PyYAML's node tree (``yaml.SafeLoader``'s
composer: no object construction, no arbitrary tags) and walked by the
validator, which reads ``node.start_mark`` to report ``file:line``. Anchors
and aliases are refused outright while composing, so an alias-expansion
("billion laughs") document is rejected before anything is expanded.
"""

from __future__ import annotations

import datetime as dt

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"

# Deeper than any policy needs; PyYAML's composer recurses, so this also keeps
# a "[[[[…" document from exhausting the interpreter's stack.
MAX_DEPTH = 32

Scalar = str | int | float | bool | None | dt.date | dt.datetime | bytes


class YamlProblem(Exception):
    """The text is not a YAML document we accept; ``line`` is 1-based (0: unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            _check_event(self.peek_event(), self._depth)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str) -> Node | None:
    """The single document's root node (None when the text holds no document)."""
    try:
        return _compose_libyaml(text) if _CLoader is not None else _compose_python(text)
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = int(mark.line) + 1 if mark is not None else 0
        what = e.problem or e.context or "unreadable"
        context = f" ({e.context})" if e.context and e.problem else ""
        raise YamlProblem(line, f"invalid YAML: {what}{context}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, max(e.position, 0)) + 1
        char = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
        raise YamlProblem(line, f"invalid YAML: character {char} is not allowed") from None
    except yaml.YAMLError as e:
        raise YamlProblem(0, f"invalid YAML: {e}") from None


_CLoader: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _compose_libyaml(text: str) -> Node | None:
    # libyaml is ~10x faster than the pure-Python parser. Its composer cannot
    # be hooked, so the event stream is checked first: nothing is composed
    # unless it is free of anchors and aliases and nested within MAX_DEPTH.
    assert _CLoader is not None
    depth = 0
    for event in yaml.parse(text, Loader=_CLoader):
        _check_event(event, depth + 1)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    node: Node | None = yaml.compose(text, Loader=_CLoader)
    return node


def _compose_python(text: str) -> Node | None:
    loader = None
    try:
        loader = _Loader(text)  # the reader checks for forbidden characters here
        return loader.get_single_node()
    finally:
        if loader is not None:
            loader.dispose()


def _check_event(event: yaml.Event, depth: int) -> None:
    mark = event.start_mark
    line = int(mark.line) + 1 if mark is not None else 0
    if isinstance(event, yaml.AliasEvent):
        raise YamlProblem(line, f"YAML aliases are not allowed (*{event.anchor})")
    anchor = getattr(event, "anchor", None)
    if anchor is not None:
        raise YamlProblem(line, f"YAML aliases are not allowed (anchor &{anchor})")
    if depth > MAX_DEPTH and isinstance(event, yaml.NodeEvent):
        raise YamlProblem(line, f"YAML nested more than {MAX_DEPTH} levels deep")


def scalar_value(node: ScalarNode) -> Scalar:
    """The scalar as YAML 1.1's safe schema reads it (dates become ``datetime.date``).

    Raises ``YamlProblem`` for values the safe schema rejects (unknown tags,
    impossible dates such as 2026-02-30).
    """
    try:
        value = SafeConstructor().construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        problem = getattr(e, "problem", None) or str(e)
        raise YamlProblem(line_of(node), f"invalid value {node.value!r}: {problem}") from None
    assert isinstance(value, str | int | float | bool | dt.date | bytes | None)
    return value


def kind(node: Node) -> str:
    """What the node is, for messages ("a list", "an integer" …)."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    try:
        value = scalar_value(node) if isinstance(node, ScalarNode) else None
    except YamlProblem:
        return f"{node.value!r}"
    return describe(value)


def describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, dt.datetime):
        return f"a date and time ({value.isoformat()})"
    if isinstance(value, dt.date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return type(value).__name__
