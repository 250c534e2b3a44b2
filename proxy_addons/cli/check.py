"""`socialgate check`: what the proxy would decide for a user and a URL, and why.

It calls the proxy's own decision code (`proxy_addons.decide`) on the policy
file, so the answer is what the proxy does for an intercepted request; each
exemption naming the user (directly or through a group) is listed with the
reason it did or did not apply.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import click

from proxy_addons.cli.common import format_option, holder_text, policy_option
from proxy_addons.decide import (
    Decision,
    Reason,
    SiteMatch,
    classify,
    covers,
    decide,
    exemption_verdict,
)
from proxy_addons.errors import ConfigError
from proxy_addons.hosts import normalise_host
from proxy_addons.policy.load import load_policy
from proxy_addons.policy.model import READ_ONLY_METHODS, Exemption, Policy
from proxy_addons.policy.schedule import schedule_text

_METHOD = re.compile(r"^[A-Za-z]{1,20}$")


@dataclass(frozen=True, slots=True)
class Considered:
    exemption: Exemption
    covers: bool
    verdict: Reason | None  # None: applies
    used: bool
    detail: str


def parse_target(url: str) -> tuple[str, str]:
    """(normalised host, URL as shown) from a URL or a bare host name."""
    text = url.strip()
    try:
        parts = urlsplit(text if "://" in text else "//" + text)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as e:
        raise ConfigError(f"URL {url!r}: not a valid URL ({e})") from None
    host = normalise_host(parts.netloc.rpartition("@")[2]) if parts.netloc else None
    if host is None:
        raise ConfigError(f"URL {url!r}: no valid host name in it")
    return host, text


def parse_at(text: str | None, policy: Policy) -> dt.datetime:
    """``--at``: ISO 8601 date or date and time; without a zone, the policy's time zone."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--at {text!r}: not a date/time such as 2026-11-25T10:00 or 2026-11-25T10:00+01:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=policy.timezone)
    return when


def _why(ex: Exemption, verdict: Reason, method: str, match: SiteMatch) -> str:
    if verdict is Reason.REVOKED and ex.revoked is not None:
        r = ex.revoked
        return f"revoked on {r.date} by {r.by}: {r.reason}"
    if verdict is Reason.EXPIRED:
        return f"expired on {ex.expires}"
    if verdict is Reason.NOT_YET_VALID:
        return f"not valid before {ex.granted}"
    if verdict is Reason.OUTSIDE_SCHEDULE and ex.schedule is not None:
        return f"outside its schedule ({schedule_text(ex.schedule)})"
    if verdict is Reason.READ_ONLY:
        allowed = ", ".join(sorted(READ_ONLY_METHODS))
        return f"read-only: {method} is not allowed (only {allowed})"
    return str(verdict)


def consider(
    policy: Policy, user: str, match: SiteMatch, method: str, when: dt.datetime
) -> list[Considered]:
    """Every exemption naming ``user``, in the order the proxy tries them."""
    out: list[Considered] = []
    used = False
    for ex in policy.exemptions_by_user.get(user, ()):
        if not covers(ex, match):
            out.append(
                Considered(
                    ex,
                    False,
                    None,
                    False,
                    f"other site: covers {', '.join(ex.sites)}, not {match.site}",
                )
            )
            continue
        verdict = exemption_verdict(policy, ex, method, when)
        if verdict is None:
            detail = f"applies ({ex.access} access until {ex.expires})"
            if used:
                detail += "; not needed, an earlier exemption applies"
            out.append(Considered(ex, True, None, not used, detail))
            used = True
        else:
            out.append(Considered(ex, True, verdict, False, _why(ex, verdict, method, match)))
    return out


def _headline(d: Decision) -> str:
    if d.allowed:
        return f"ALLOWED under exemption {d.exemption_id} ({d.access} access)"
    if not d.social:
        return "NOT SOCIAL: passed through untouched (not decrypted, not recorded)"
    if d.exemption_id:
        return f"BLOCKED ({d.reason}; closest exemption {d.exemption_id})"
    return f"BLOCKED ({d.reason})"


def _as_json(
    policy: Policy,
    d: Decision,
    user: str,
    method: str,
    when: dt.datetime,
    url: str,
    host: str,
    considered: list[Considered],
) -> dict[str, Any]:
    return {
        "url": url,
        "host": host,
        "user": user,
        "groups": list(policy.user_groups.get(user, ())),
        "method": method,
        "at": when.isoformat(),
        "policy": {"path": policy.path, "sha256": policy.sha256},
        "decision": {
            "outcome": str(d.outcome),
            "reason": str(d.reason),
            "category": d.category or None,
            "site": d.site or None,
            "entry": d.entry or None,
            "exemption_id": d.exemption_id,
            "access": str(d.access) if d.access else None,
        },
        "exemptions": [
            {
                "id": c.exemption.id,
                "subject": holder_text(c.exemption),
                "sites": list(c.exemption.sites),
                "access": str(c.exemption.access),
                "covers": c.covers,
                "applies": c.covers and c.verdict is None,
                "used": c.used,
                "reason": "other-site" if not c.covers else (str(c.verdict) if c.verdict else None),
                "detail": c.detail,
            }
            for c in considered
        ],
    }


@click.command()
@policy_option
@click.option("--user", required=True, metavar="USER", help="The user name the proxy sees.")
@click.option("--method", default="GET", show_default=True, help="HTTP request method.")
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="ISO 8601 date/time (default: now); without a zone, the policy's time zone.",
)
@format_option("text", "json")
@click.argument("url")
def check(policy_path: str, user: str, method: str, at: str | None, fmt: str, url: str) -> None:
    """Explain what the proxy decides for USER requesting URL.

    Prints the decision, the category and list entry that matched, and each
    exemption naming the user with why it did or did not apply. Exit status
    0 whatever the decision; 2 for bad input.
    """
    if not _METHOD.match(method):
        raise ConfigError(f"--method {method!r}: not an HTTP method")
    method = method.upper()
    if not user.strip():
        raise ConfigError("--user must not be empty")
    host, shown = parse_target(url)
    policy = load_policy(policy_path)
    when = parse_at(at, policy)
    d = decide(policy, user, [host], method, when)
    match = classify(policy, host)
    considered = consider(policy, user, match, method, when) if match is not None else []
    if fmt == "json":
        doc = _as_json(policy, d, user, method, when, shown, host, considered)
        click.echo(json.dumps(doc, indent=2))
        return
    groups = ", ".join(policy.user_groups.get(user, ())) or "none"
    click.echo(_headline(d))
    click.echo(f"  request:  {method} {shown} (host {host})")
    click.echo(f"  user:     {user} (groups: {groups})")
    click.echo(f"  at:       {when.isoformat()}")
    click.echo(f"  policy:   {policy.path} (sha256 {policy.sha256[:12]})")
    if match is None:
        click.echo("  matched:  no blocked category lists this host")
        return
    click.echo(
        f"  matched:  category {match.category}, site {match.site}, list entry {match.entry}"
    )
    if not considered:
        click.echo(f"  exemptions: none names {user} or their groups")
        return
    click.echo(f"  exemptions naming {user} ({len(considered)}):")
    for c in considered:
        mark = "*" if c.used else "-"
        ex = c.exemption
        click.echo(f"    {mark} {ex.id} ({holder_text(ex)}, {ex.access}): {c.detail}")
