"""The policy's top-level settings (version, contacts, time zone, limits) and ``reminder``."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from yaml.nodes import Node

from proxy_addons.policy.model import Reminder
from proxy_addons.policy.nodes import Fields, NodeReader, value_of
from proxy_addons.policy.schema import REMINDER_KEYS

DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DEFAULT_MAX_EXEMPTION_DAYS = 365


@dataclass(frozen=True, slots=True)
class Settings:
    """The settings as read; None where a value is missing or wrong (already reported)."""

    version: int | None
    organisation: str | None
    contact: str | None
    policy_url: str | None
    apply_url: str | None
    timezone: ZoneInfo | None
    max_days: int


def read_settings(r: NodeReader, top: Fields) -> Settings:
    def get(key: str) -> Node | None:
        return value_of(top, key)

    version = None
    if (node := get("version")) is not None:
        version = r.integer(node, "version")
        if version is not None and version != 1:
            r.err(node, f"version: unsupported version {version} (expected 1)")
    organisation = r.opt(get("organisation"), lambda n: r.string(n, "organisation"))
    contact = r.opt(get("contact"), lambda n: r.string(n, "contact"))
    policy_url = r.opt(get("policy_url"), lambda n: r.url(n, "policy_url", ("https", "http")))
    apply_url = r.opt(
        get("apply_url"), lambda n: r.url(n, "apply_url", ("https", "http", "mailto"))
    )
    timezone = r.opt(get("timezone"), lambda n: r.timezone(n, "timezone"))
    max_days = DEFAULT_MAX_EXEMPTION_DAYS
    if (node := get("max_exemption_days")) is not None:
        value = r.integer(node, "max_exemption_days")
        if value is not None and not 1 <= value <= 36500:
            r.err(node, f"max_exemption_days: {value} is not between 1 and 36500")
        elif value is not None:
            max_days = value
    return Settings(version, organisation, contact, policy_url, apply_url, timezone, max_days)


def read_reminder(r: NodeReader, node: Node, key: Node) -> Reminder | None:
    fields = r.mapping(node, "reminder", REMINDER_KEYS, REMINDER_KEYS, at=key)
    if fields is None:
        return None
    every = None
    if "every" in fields:
        n = fields["every"][1]
        text = r.string(n, "reminder: every")
        m = DURATION.match(text.strip()) if text is not None else None
        if text is not None and m is None:
            r.err(n, f"reminder: every: {text!r} is not a duration like 30m, 24h or 7d")
        elif m is not None:
            every = dt.timedelta(**{DURATION_UNITS[m.group(2)]: int(m.group(1))})
    text = r.string(fields["text"][1], "reminder: text") if "text" in fields else None
    if every is None or text is None:
        return None
    return Reminder(every, text)
