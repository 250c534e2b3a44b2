"""policies/policy.schema.json agrees with the loader: valid examples pass both, and the
invalid policies a schema can express fail both."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema")
from ruamel.yaml import YAML  # noqa: E402

from proxy_addons.errors import PolicyError  # noqa: E402
from proxy_addons.policy import schema as load  # noqa: E402
from proxy_addons.policy.load import load_policy, parse_policy_text  # noqa: E402
from tests.support.invalid_policies import INVALID  # noqa: E402
from tests.support.policy_texts import (  # noqa: E402
    PRODUCT_EXAMPLE,
    SHIPPED,
    SHIPPED_SCHEMA,
    UNICODE_EXAMPLE,
    VALID,
)


def as_editor_sees(text: str) -> Any:
    """The document as a YAML 1.2 editor reads it (18:00 is text), dates as ISO strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    return plain(YAML(typ="safe", pure=True).load(io.StringIO(text)))


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SHIPPED_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_valid_draft_2020_12(validator: Any) -> None:
    """The shipped schema is itself a valid draft 2020-12 schema."""
    assert validator.schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    "path", [PRODUCT_EXAMPLE, SHIPPED, UNICODE_EXAMPLE], ids=["product", "shipped", "unicode"]
)
def test_valid_examples_pass_schema_and_loader(validator: Any, path: Path) -> None:
    """The example policies validate against the schema and load."""
    errors = [e.message for e in validator.iter_errors(as_editor_sees(path.read_text()))]
    assert errors == []
    load_policy(path)


# Invalid policies (from the loader's table) whose fault a JSON Schema can express.
SCHEMA_EXPRESSIBLE = {
    "unknown top-level key",
    "version is not 1",
    "version wrong type",
    "missing contact",
    "organisation is a list",
    "policy_url not a URL",
    "max_exemption_days zero",
    "unknown category key",
    "category name with a dot",
    "blocked category twice",
    "nothing blocked",
    "unknown identity key",
    "group member twice",
    "group is not a list",
    "exemptions is null",
    "unknown exemption key",
    "missing business case",
    "empty business case",
    "null business case",
    "missing approver",
    "missing expiry",
    "missing grant date",
    "missing id",
    "missing sites",
    "empty sites",
    "missing access",
    "bad access",
    "date and time instead of date",
    "integer date",
    "both user and group",
    "neither user nor group",
    "user name with a space",
    "revoked without reason",
    "bad schedule day",
    "schedule day twice",
    "schedule without days",
    "bad schedule time",
    "hour 24 as start",
    "minute 60",
    "schedule without to",
    "bad reminder interval",
    "reminder without text",
    "empty reminder text",
}
CASES = [(name, text) for name, text, _, _ in INVALID if name in SCHEMA_EXPRESSIBLE]


def test_expressible_cases_exist() -> None:
    """Every name in the schema table names a case of the loader's table."""
    assert {name for name, _ in CASES} == SCHEMA_EXPRESSIBLE


@pytest.mark.parametrize("text", [t for _, t in CASES], ids=[n for n, _ in CASES])
def test_invalid_policy_fails_schema_and_loader(validator: Any, text: str) -> None:
    """An invalid policy the schema can describe is refused by both."""
    assert list(validator.iter_errors(as_editor_sees(text))) != []
    with pytest.raises(PolicyError):
        parse_policy_text(text, "policy.yaml")


def test_minimal_policy_passes_both(validator: Any) -> None:
    """The loader tests' minimal policy is valid for the schema too."""
    assert list(validator.iter_errors(as_editor_sees(VALID))) == []
    parse_policy_text(VALID, "policy.yaml")


@pytest.mark.parametrize(
    ("pointer", "keys"),
    [
        (("properties",), load.TOP_KEYS),
        (("$defs", "category", "properties"), load.CATEGORY_KEYS),
        (("properties", "identity", "properties"), load.IDENTITY_KEYS),
        (("$defs", "exemption", "properties"), load.EXEMPTION_KEYS),
        (("$defs", "exemption", "properties", "schedule", "properties"), load.SCHEDULE_KEYS),
        (("$defs", "exemption", "properties", "revoked", "properties"), load.REVOKED_KEYS),
        (("properties", "reminder", "properties"), load.REMINDER_KEYS),
    ],
    ids=["top", "category", "identity", "exemption", "schedule", "revoked", "reminder"],
)
def test_schema_and_loader_allow_the_same_keys(
    validator: Any, pointer: tuple[str, ...], keys: tuple[str, ...]
) -> None:
    """Each mapping allows exactly the keys the loader allows."""
    node = validator.schema
    for part in pointer:
        node = node[part]
    assert set(node) == set(keys)


@pytest.mark.parametrize(
    ("pointer", "keys"),
    [
        ((), load.TOP_REQUIRED),
        (("$defs", "exemption"), load.EXEMPTION_REQUIRED),
        (("$defs", "exemption", "properties", "schedule"), load.SCHEDULE_REQUIRED),
        (("properties", "reminder"), load.REMINDER_KEYS),
    ],
    ids=["top", "exemption", "schedule", "reminder"],
)
def test_schema_and_loader_require_the_same_keys(
    validator: Any, pointer: tuple[str, ...], keys: tuple[str, ...]
) -> None:
    """Each mapping requires exactly the keys the loader requires."""
    node = validator.schema
    for part in pointer:
        node = node[part]
    assert set(node["required"]) == set(keys)


def test_every_mapping_forbids_unknown_keys(validator: Any) -> None:
    """additionalProperties is false on every object with fixed properties."""
    open_objects: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(where)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(validator.schema, "")
    assert open_objects == []
