"""`socialgate policy validate`: check a policy file (and its category lists) before use.

Exit 0 when the policy loads, 2 when it does not; every problem is reported
as ``file:line: message`` so an admin can fix the file in one pass.
"""

from __future__ import annotations

import json
from typing import Any

import click

from proxy_addons.cli.common import format_option, settings
from proxy_addons.errors import PolicyError
from proxy_addons.policy.edit_rules import unblocked_sites
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import Policy


@click.group()
def policy() -> None:
    """Work with the policy file."""


def summary(p: Policy) -> dict[str, Any]:
    """What a valid policy contains, for the success line and --format json."""
    return {
        "policy": p.path,
        "sha256": p.sha256,
        "categories": len(p.categories),
        "blocked_categories": list(p.blocked_categories),
        "domains": len(p.index.domains),
        "networks": len(p.index.networks),
        "groups": len(p.groups),
        "exemptions": len(p.exemptions),
        "revoked_exemptions": sum(1 for e in p.exemptions if e.revoked is not None),
    }


@policy.command("validate")
@click.argument("policy_path", metavar="[POLICY]", required=False)
@format_option("text", "json", help="json: one object {ok, errors, summary} on stdout.")
@click.pass_context
def validate(ctx: click.Context, policy_path: str | None, fmt: str) -> None:
    """Check POLICY and the category files it names.

    POLICY defaults to $SOCIALGATE_POLICY, else the configuration's (config.yaml in
    --confdir/$SOCIALGATE_CONFDIR), else policies/policy.yaml.
    """
    path = policy_path or settings().policy
    try:
        loaded = load_policy(path)
    except PolicyError as e:
        if fmt == "json":
            errors = [{"file": f, "line": n, "message": m} for f, n, m in e.errors]
            click.echo(json.dumps({"ok": False, "errors": errors, "summary": None}))
        else:
            for line in e.lines():
                click.echo(line, err=True)
        ctx.exit(2)
    info = summary(loaded)
    warnings = [
        f"{path}:{ex.line}: exemption {ex.id}: {site} is in no blocked category, so it "
        "exempts nothing (a typo?)"
        for ex in loaded.exemptions
        if ex.revoked is None
        for site in unblocked_sites(loaded, ex.sites)
    ]
    if fmt == "json":
        doc = {"ok": True, "errors": [], "warnings": warnings, "summary": info}
        click.echo(json.dumps(doc))
        return
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    nouns = (("categories", "category"), ("domains", "domain"), ("exemptions", "exemption"))
    counts = ", ".join(f"{info[k]} {k if info[k] != 1 else one}" for k, one in nouns)
    click.echo(f"{path}: ok ({counts}, sha256 {info['sha256']})")
