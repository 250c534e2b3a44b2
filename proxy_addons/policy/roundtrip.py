"""Editing the policy file as YAML that keeps its comments, order and layout (ruamel).

The policy loader reads YAML 1.1 (PyYAML); ruamel writes YAML 1.2. Values
written here are quoted wherever the two would read them differently, and
comments that introduce the next entry stay above it when one is appended.
"""

from __future__ import annotations

import io
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from proxy_addons.errors import EditRefused, PolicyError


def plain_or_quoted(text: str) -> str:
    """``text`` as a scalar the policy loader (YAML 1.1) reads back unchanged.

    ruamel writes YAML 1.2, where ``no``, ``08:00`` or ``0123`` are plain
    strings; the loader would read them as a boolean or numbers.
    """
    try:
        same = yaml.safe_load(text) == text and "\n" not in text
    except yaml.YAMLError:
        same = False
    return text if same else DoubleQuotedScalarString(text)


def flow(items: list[str]) -> CommentedSeq:
    """A list written on one line, ``[a, b]``, as the shipped policy writes short lists."""
    seq = CommentedSeq([plain_or_quoted(i) for i in items])
    seq.fa.set_flow_style()
    return seq


def _mapping_indent(text: str) -> int:
    """The indent of the first nested mapping key (default 2)."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not line or line[0] in " #-" or not line.split("#", 1)[0].rstrip().endswith(":"):
            continue
        for nxt in lines[i + 1 :]:
            stripped = nxt.lstrip()
            if not stripped or stripped.startswith("#"):
                continue
            indent = len(nxt) - len(stripped)
            if indent and not stripped.startswith("-"):
                return indent
            break
    return 2


def _yaml_for(text: str) -> YAML:
    y = YAML()  # round trip
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap long lines
    mapping = _mapping_indent(text)
    _, seq_indent, offset = load_yaml_guess_indent(text)
    if offset is None or not seq_indent:
        # No block list yet: indent the first one like the shipped policy does.
        seq_indent, offset = mapping + 2, mapping
    y.indent(mapping=mapping, sequence=seq_indent, offset=offset)
    return y


def _has_children(node: Any) -> bool:
    return (
        isinstance(node, CommentedMap | CommentedSeq) and len(node) > 0 and not node.fa.flow_style()
    )


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """(container, key) of the last scalar line of ``node``: where ruamel keeps
    the comments that follow it."""
    last = None
    while _has_children(node):
        key = list(node.keys())[-1] if isinstance(node, CommentedMap) else len(node) - 1
        last = (node, key)
        node = node[key]
    return last


def _slot_pos(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _take_trailing_comments(node: Any) -> str:
    """Detach the comment lines after ``node`` (they introduce what follows it).

    ruamel attaches "# Investigators" above the next list item to the last
    line of the previous one; something appended there must go above them.
    """
    slot = _last_slot(node)
    if slot is None:
        return ""
    container, key = slot
    entry = container.ca.items.get(key)
    pos = _slot_pos(container)
    if not entry or len(entry) <= pos or entry[pos] is None:
        return ""
    value: str = entry[pos].value
    nl = value.find("\n")
    if nl == -1 or nl == len(value) - 1:
        return ""
    head, rest = value[: nl + 1], value[nl + 1 :]
    if head.strip():
        entry[pos].value = head
    else:
        entry[pos] = None
    return rest


def _put_trailing_comments(node: Any, rest: str) -> None:
    if not rest:
        return
    slot = _last_slot(node)
    assert slot is not None
    container, key = slot
    pos = _slot_pos(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    if entry[pos] is None:
        entry[pos] = CommentToken("\n" + rest, CommentMark(0), None)
    else:
        entry[pos].value += rest


def append_key(mapping: CommentedMap, key: str, value: Any) -> None:
    rest = _take_trailing_comments(mapping)
    mapping[key] = value
    _put_trailing_comments(mapping, rest)


def append_item(seq: CommentedSeq, value: Any) -> None:
    rest = _take_trailing_comments(seq)
    seq.append(value)
    _put_trailing_comments(seq, rest)


class Document:
    """The policy text, its round-trip tree, and how to write it back."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.yaml = _yaml_for(text)
        try:
            self.root = self.yaml.load(text)
        except YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = int(mark.line) + 1 if mark is not None else 0
            raise PolicyError([(path, line, f"cannot edit: {e}")]) from None
        if not isinstance(self.root, CommentedMap):
            raise PolicyError([(path, 1, "cannot edit: the top level is not a mapping")])

    def exemptions(self) -> CommentedSeq:
        seq = self.root.get("exemptions")
        if seq is None:
            seq = CommentedSeq()
            if "exemptions" in self.root:
                self.root["exemptions"] = seq
            else:
                append_key(self.root, "exemptions", seq)
        if not isinstance(seq, CommentedSeq):
            raise PolicyError([(self.path, 0, "cannot edit: 'exemptions' is not a list")])
        if seq.fa.flow_style():
            seq.fa.set_block_style()  # `exemptions: []` grows into a block list
        return seq

    def entry(self, exemption_id: str) -> CommentedMap:
        for item in self.exemptions():
            if isinstance(item, CommentedMap) and item.get("id") == exemption_id:
                return item
        raise EditRefused(f"no exemption {exemption_id!r} in {self.path}")

    def dump(self) -> str:
        buf = io.StringIO()
        self.yaml.dump(self.root, buf)
        return buf.getvalue()


def quoted(text: str) -> str:
    """``text`` always double-quoted (times: YAML 1.1 reads a plain 08:00 as a number)."""
    value: str = DoubleQuotedScalarString(text)
    return value
