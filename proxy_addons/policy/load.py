"""Load and validate the policy file: YAML with line marks → frozen `Policy`.

Every problem found is collected as a `Problem` ``(file, line, message)`` and
raised together in one `PolicyError`, so an admin fixes a file in one pass;
nothing is built unless the whole file (and every category list it names) is
valid. Each section has its own module; this one reads the document and
hands each section to its validator, in the order their problems are found.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from yaml.nodes import MappingNode

from proxy_addons.fileio import open_regular
from proxy_addons.policy.accounts import read_groups, read_identity, read_users
from proxy_addons.policy.build import Sections, build_policy
from proxy_addons.policy.categories import ListFiles, ReadFile, read_blocked, read_categories
from proxy_addons.policy.exemptions import Names, read_exemptions
from proxy_addons.policy.model import UTC, Policy
from proxy_addons.policy.nodes import NodeReader, value_of
from proxy_addons.policy.policyfile import check_size, read_policy_file
from proxy_addons.policy.schema import TOP_KEYS, TOP_REQUIRED
from proxy_addons.policy.settings import read_reminder, read_settings
from proxy_addons.policy.yamlmarks import YamlProblem, compose, kind


def _read_bytes(path: Path) -> bytes:
    with open_regular(path) as f:
        return f.read()


def load_policy(path: str | Path) -> Policy:
    """Read, validate and build the policy at ``path`` (and the category files it names)."""
    text, data = read_policy_file(Path(path), str(path))
    return _build(str(path), _read_bytes, text, data)


def parse_policy_text(text: str, path: str, read_file: ReadFile | None = None) -> Policy:
    """Validate and build a policy from text already in hand (e.g. an edited document).

    ``path`` names the file in messages and anchors relative ``domains_files``;
    ``read_file`` reads category files (default: from disk).
    """
    return _build(str(path), read_file or _read_bytes, text, text.encode("utf-8"))


def _build(path: str, read_file: ReadFile, text: str, policy_bytes: bytes) -> Policy:
    check_size(len(policy_bytes), path)
    # The digest covers the policy file and then every category file, in the order read.
    digest = hashlib.sha256(policy_bytes)
    r = NodeReader(path)
    try:
        root = compose(text)
    except YamlProblem as e:
        r.err(e.line, e.message)
        raise r.fail() from None
    if root is None:
        r.err(0, "policy file is empty")
        raise r.fail()
    if not isinstance(root, MappingNode):
        r.err(root, f"the top level must be a mapping of settings, got {kind(root)}")
        raise r.fail()
    top = r.mapping(root, "policy", TOP_KEYS, TOP_REQUIRED)
    assert top is not None

    settings = read_settings(r, top)
    users = read_users(r, value_of(top, "users"))
    # Category files live beside the real file when the policy is reached
    # through a symlink (e.g. /etc/socialgate/policy.yaml -> a checkout).
    p = Path(path)
    files = ListFiles((p.resolve() if p.is_symlink() else p).parent, read_file, digest)
    categories = read_categories(r, value_of(top, "categories"), files)
    blocked = read_blocked(r, value_of(top, "blocked_categories"), categories)
    source_addresses = read_identity(r, value_of(top, "identity"))
    known_users = None
    if users is not None:
        known_users = users | set(source_addresses.values())
    groups = read_groups(r, value_of(top, "groups"), known_users)
    names = Names(categories, groups, known_users, settings.timezone or UTC, settings.max_days)
    exemptions = read_exemptions(r, value_of(top, "exemptions"), names)
    reminder = None
    if "reminder" in top:
        reminder = read_reminder(r, top["reminder"][1], top["reminder"][0])

    if r.errors or categories is None or exemptions is None:
        raise r.fail()
    doc = Sections(settings, categories, blocked, groups, source_addresses, exemptions, reminder)
    return build_policy(path, digest.hexdigest(), doc)
