"""Render the block page. Autoescaped: it reflects attacker-controlled host names."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import jinja2

from proxy_addons.decide import Decision, Reason
from proxy_addons.policy.model import Policy
from proxy_addons.policy.schedule import schedule_text


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("proxy_addons", "pages"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        # Templates ship with the package: no stat() of the file on every block page.
        auto_reload=False,
    )


@cache
def _template(name: str) -> jinja2.Template:
    return _env().get_template(name)


@dataclass(frozen=True, slots=True)
class Page:
    content: bytes
    content_type: str


def reason_text(decision: Decision, policy: Policy | None) -> str:
    """The reason in plain words, naming the exemption where one came close."""
    ex = policy.exemption(decision.exemption_id) if policy and decision.exemption_id else None
    ex_name = f"Your exemption {decision.exemption_id}" if decision.exemption_id else ""
    match decision.reason:
        case Reason.NO_IDENTITY:
            return (
                "The proxy could not tell who you are (your browser did not sign in to the "
                "proxy), and only named staff can hold an exemption."
            )
        case Reason.NO_EXEMPTION:
            return "You do not hold a professional exemption for this site."
        case Reason.EXPIRED if ex is not None:
            return f"{ex_name} for this site expired on {ex.expires.isoformat()}."
        case Reason.NOT_YET_VALID if ex is not None:
            return f"{ex_name} for this site starts on {ex.granted.isoformat()}."
        case Reason.REVOKED:
            return f"{ex_name} for this site has been revoked."
        case Reason.OUTSIDE_SCHEDULE if ex is not None and ex.schedule is not None:
            return f"{ex_name} covers this site only on {schedule_text(ex.schedule, 'prose')}."
        case Reason.READ_ONLY:
            return (
                f"{ex_name} is read-only: reading is allowed, but posting, uploading and "
                "messaging are blocked."
            )
        case Reason.READ_ONLY_NOT_ENFORCEABLE:
            return (
                f"{ex_name} is read-only, and this proxy is set up so that it cannot tell reading "
                "from posting; ask IT to enable inspection of exempt traffic."
            )
        case Reason.NAME_MISMATCH:
            return (
                "The site names in your request did not agree with each other (a technique "
                "used to disguise traffic)."
            )
        case Reason.AUDIT_UNAVAILABLE:
            return (
                "Access to this site must be recorded, and the record could not be written. "
                "Please try again later; IT has been alerted."
            )
        case Reason.ERROR:
            return "The proxy could not check this request, so it was blocked to be safe."
        case _:
            return f"Your access to this site is not allowed ({decision.reason})."


def block_page(
    decision: Decision,
    policy: Policy | None,
    *,
    site: str,
    ref: str,
    now: dt.datetime,
    html: bool,
) -> Page:
    ctx = {
        "organisation": policy.organisation if policy else "Your organisation",
        "contact": policy.contact if policy else "your IT service desk",
        "policy_url": policy.policy_url if policy else "",
        "apply_url": policy.apply_url if policy else None,
        "site": site,
        "ref": ref,
        "reason_text": reason_text(decision, policy),
        "when": now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    name = "block.html.j2" if html else "block.txt.j2"
    text = _template(name).render(ctx)
    ctype = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
    return Page(text.encode("utf-8"), ctype)


def reminder_page(
    policy: Policy,
    *,
    site: str,
    exemption_id: str,
    ack_url: str,
    ref: str,
) -> Page:
    assert policy.reminder is not None
    text = _template("reminder.html.j2").render(
        organisation=policy.organisation,
        policy_url=policy.policy_url,
        site=site,
        exemption_id=exemption_id,
        text=policy.reminder.text,
        ack_url=ack_url,
        ref=ref,
    )
    return Page(text.encode("utf-8"), "text/html; charset=utf-8")
