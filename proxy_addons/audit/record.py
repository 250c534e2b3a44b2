"""Audit records: the one place where ECS documents are built.

Every record is a plain, JSON-safe dict in Elastic Common Schema layout
(nested objects). The sink adds the chain fields; nothing else adds or
changes fields. Passwords, cookies, auth headers and bodies are never
inputs here, so they cannot leak into the trail.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy_addons import __version__
from proxy_addons.audit.bounds import bounded, bounded_names
from proxy_addons.decide import Decision
from proxy_addons.errors import PolicyError
from proxy_addons.limits import Violation
from proxy_addons.policy.diff import PolicyDiff
from proxy_addons.policy.model import Policy

ECS_VERSION = "8.11.0"
Record = dict[str, Any]

# Actions (event.action) — the audit vocabulary investigators search by.
REQUEST_ALLOWED = "request-allowed"
REQUEST_BLOCKED = "request-blocked"
CONNECTION_ALLOWED = "connection-allowed"  # social TLS passed through (no interception)
CONNECTION_BLOCKED = "connection-blocked"  # refused at CONNECT / ClientHello / raw TCP
REMINDER_SHOWN = "reminder-shown"
REMINDER_ACKNOWLEDGED = "reminder-acknowledged"
POLICY_LOADED = "policy-loaded"
POLICY_RELOAD_FAILED = "policy-reload-failed"

# A policy with thousands of mistakes must not make one huge record.
MAX_ERRORS_RECORDED = 20


def new_ref() -> str:
    """A reference staff can read out over the phone: SG- and 10 base32 characters."""
    raw = base64.b32encode(os.urandom(10)).decode("ascii")[:10]
    return f"SG-{raw[:5]}-{raw[5:]}"


def timestamp(now: dt.datetime) -> str:
    """UTC ISO-8601 with microseconds and a Z suffix."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_HOSTNAME = socket.gethostname()


def observer() -> dict[str, str]:
    return {
        "hostname": _HOSTNAME,
        "product": "socialgate",
        "vendor": "socialgate",
        "type": "proxy",
        "version": __version__,
    }


@dataclass(frozen=True, slots=True)
class Access:
    """What the proxy saw of one access attempt (no bodies, cookies or credentials)."""

    user: str | None
    identity: str  # proxyauth | source-address | none
    groups: tuple[str, ...]
    source_ip: str
    source_port: int | None  # None: forwarded by a trusted proxy (the port is its own)
    stage: str  # connect | tls | request | tcp
    scheme: str
    domain: str
    port: int
    method: str | None = None
    path: str | None = None
    query: str | None = None  # only when the operator enabled query logging
    status_code: int | None = None
    forwarded_by: str | None = None  # the trusted proxy whose X-Forwarded-For gave source_ip


def access_record(
    decision: Decision,
    access: Access,
    *,
    ref: str,
    policy_sha256: str,
    now: dt.datetime,
    enforcement: str | None = None,
    limit: Violation | None = None,
) -> Record:
    """The record of an allowed or blocked social access attempt.

    ``enforcement`` says how a blocked attempt was stopped: a request by ``block-page``,
    ``killed`` or ``refused`` (over a size limit), raw TCP by ``connection-closed`` or
    ``dropped``; other connection-level records and allowed requests have none.
    ``limit`` is the request limit a refused request broke (its size, never its content).
    """
    allowed = decision.allowed
    truncated: dict[str, int] = {}
    domain = bounded("url.domain", access.domain, truncated)
    request_level = access.stage == "request"
    if request_level:
        action = REQUEST_ALLOWED if allowed else REQUEST_BLOCKED
    else:
        action = CONNECTION_ALLOWED if allowed else CONNECTION_BLOCKED
    verb = "allowed" if allowed else "blocked"
    who = access.user or "unidentified user"
    url: dict[str, Any] = {"scheme": access.scheme, "domain": domain, "port": access.port}
    if access.path is not None:
        url["path"] = bounded("url.path", access.path, truncated)
    if access.query:
        url["query"] = bounded("url.query", access.query, truncated)
    http: dict[str, Any] = {}
    if access.method is not None:
        http["request"] = {"method": bounded("http.request.method", access.method, truncated)}
    if access.status_code is not None:
        http["response"] = {"status_code": access.status_code}
    record: Record = {
        "@timestamp": timestamp(now),
        "message": f"social networking {verb} for {who}: {domain} ({decision.reason})",
        "ecs": {"version": ECS_VERSION},
        "event": {
            "id": ref,
            "kind": "event",
            "category": ["network", "web"],
            "type": ["access", "allowed" if allowed else "denied"],
            "action": action,
            "outcome": "success" if allowed else "failure",
            "reason": str(decision.reason),
            "dataset": "socialgate.audit",
        },
        "user": {"name": access.user} if access.user else {},
        "source": {"ip": access.source_ip}
        | ({} if access.source_port is None else {"port": access.source_port}),
        "url": url,
        "rule": {
            "id": decision.exemption_id if allowed and decision.exemption_id else decision.category,
            "name": bounded("rule.name", decision.site or decision.host, truncated),
            "category": decision.category,
            "ruleset": "exemption" if allowed else "category",
        },
        "observer": observer(),
        "socialgate": {
            "ref": ref,
            "outcome": verb,
            "reason": str(decision.reason),
            "stage": access.stage,
            "identity": access.identity,
            "groups": list(access.groups),
            "category": decision.category,
            "site": decision.site,
            "entry": decision.entry,
            "exemption_id": decision.exemption_id,
            "access": str(decision.access) if decision.access else None,
            "names": bounded_names(decision.names or (decision.host,), truncated),
            "name_mismatch": decision.name_mismatch,
            "policy_sha256": policy_sha256,
        },
    }
    if access.forwarded_by is not None:
        record["socialgate"]["forwarded_by"] = access.forwarded_by
    if decision.writes:
        record["socialgate"]["writes"] = [str(w) for w in decision.writes]
    if truncated:
        record["socialgate"]["truncated"] = truncated
    if enforcement is not None:
        record["socialgate"]["enforcement"] = enforcement
    if limit is not None:
        record["socialgate"]["limit"] = {
            "option": limit.option,
            "size": limit.size,
            "limit": limit.limit,
        }
    if http:
        record["http"] = http
    return record


def event_record(
    action: str,
    message: str,
    *,
    now: dt.datetime,
    category: list[str],
    type_: list[str],
    outcome: str = "success",
    reason: str | None = None,
    user: str | None = None,
    target_user: str | None = None,
    target_group: str | None = None,
    socialgate: dict[str, Any] | None = None,
    ref: str | None = None,
) -> Record:
    """A non-access event: policy loaded/failed, exemption granted/revoked, audit lifecycle.

    ``ref`` is the event id when something else (a page shown to the user) already
    carries it; otherwise a new one is drawn.
    """
    event: dict[str, Any] = {
        "id": new_ref() if ref is None else ref,
        "kind": "event",
        "category": category,
        "type": type_,
        "action": action,
        "outcome": outcome,
        "dataset": "socialgate.audit",
    }
    if reason is not None:
        event["reason"] = reason
    user_obj: dict[str, Any] = {}
    if user is not None:
        user_obj["name"] = user
    target: dict[str, Any] = {}
    if target_user is not None:
        target["name"] = target_user
    if target_group is not None:
        target["group"] = {"name": target_group}
    if target:
        user_obj["target"] = target
    record: Record = {
        "@timestamp": timestamp(now),
        "message": message,
        "ecs": {"version": ECS_VERSION},
        "event": event,
        "observer": observer(),
        "socialgate": dict(socialgate or {}),
    }
    if user_obj:
        record["user"] = user_obj
    return record


def _reminder_record(
    action: str,
    message: str,
    decision: Decision,
    *,
    user: str,
    source_ip: str,
    policy_sha256: str,
    now: dt.datetime,
    ref: str | None = None,
    **extra: Any,
) -> Record:
    return event_record(
        action,
        message,
        now=now,
        category=["web"],
        type_=["info"],
        user=user,
        ref=ref,
        socialgate={
            "exemption_id": decision.exemption_id,
            "site": decision.site,
            "domain": decision.host,
            "source_ip": source_ip,
            "policy_sha256": policy_sha256,
            **extra,
        },
    )


def reminder_shown_record(
    decision: Decision,
    *,
    user: str,
    source_ip: str,
    policy_sha256: str,
    ref: str,
    now: dt.datetime,
) -> Record:
    """The code-of-conduct page was shown instead of the request; ``ref`` is on the page."""
    return _reminder_record(
        REMINDER_SHOWN,
        f"code-of-conduct reminder shown to {user}",
        decision,
        user=user,
        source_ip=source_ip,
        policy_sha256=policy_sha256,
        now=now,
        ref=ref,
    )


def reminder_acknowledged_record(
    decision: Decision,
    *,
    user: str,
    source_ip: str,
    policy_sha256: str,
    reminder_ref: str,
    now: dt.datetime,
) -> Record:
    """The user acknowledged the reminder whose record has event.id ``reminder_ref``."""
    return _reminder_record(
        REMINDER_ACKNOWLEDGED,
        f"{user} acknowledged the code of conduct",
        decision,
        user=user,
        source_ip=source_ip,
        policy_sha256=policy_sha256,
        now=now,
        reminder_ref=reminder_ref,
    )


def policy_loaded_record(
    new: Policy,
    old: Policy | None,
    diff: PolicyDiff,
    *,
    trigger: str,
    seconds: float,
    now: dt.datetime,
) -> Record:
    """A policy was put in force; ``diff`` says what changed from ``old``."""
    return event_record(
        POLICY_LOADED,
        f"policy loaded: {new.path} ({diff.text()})",
        now=now,
        category=["configuration"],
        type_=["change"],
        socialgate={
            "policy_path": new.path,
            "policy_sha256": new.sha256,
            "previous_sha256": old.sha256 if old else None,
            "exemptions": len(new.exemptions),
            "trigger": trigger,
            "load_seconds": round(seconds, 3),
            "changes": diff.summary(),
        },
    )


def lost_records(by_action: Mapping[str, int]) -> dict[str, Any]:
    """What a ``chain.break`` says of the records lost while the trail could not be
    written: how many, and how many of each ``event.action``."""
    return {
        "lost_records": sum(by_action.values()),
        "lost_by_action": dict(sorted(by_action.items())),
    }


def policy_reload_failed_record(
    error: PolicyError,
    *,
    path: str,
    in_force: Policy | None,
    trigger: str,
    now: dt.datetime,
) -> Record:
    """A reload was rejected: ``in_force`` (the last good policy) stays."""
    first = error.lines()[0]
    return event_record(
        POLICY_RELOAD_FAILED,
        f"policy reload failed, last good policy kept: {first}",
        now=now,
        category=["configuration"],
        type_=["change"],
        outcome="failure",
        reason=first,
        socialgate={
            "policy_path": path,
            "policy_sha256": in_force.sha256 if in_force else None,
            "trigger": trigger,
            "error_count": len(error.errors),
            "errors": [
                {"file": f, "line": n, "message": m}
                for f, n, m in error.errors[:MAX_ERRORS_RECORDED]
            ],
        },
    )


# --- the trail's own integrity records (forward-secure sealing, retention) ----------------
EPOCH_SEALED = "epoch-sealed"
PURGE = "purge"


def epoch_sealed_record(
    worker: str, epoch: dict[str, Any], *, now: dt.datetime, late: bool = False
) -> Record:
    """The last record of an epoch, sealed under its key: ``epoch`` = {n, start, end, records,
    first_seq, last_hash, reason}; ``late``: sealed at a restart, after the epoch's end."""
    when = "late, at restart" if late else epoch["reason"]
    return event_record(
        EPOCH_SEALED,
        f"epoch {epoch['n']} of {worker} sealed ({when}): {epoch['records']} records",
        now=now, category=["process"], type_=["info"], socialgate={"epoch": epoch},
    )  # fmt: skip


def purge_record(purge: dict[str, Any], *, user: str, now: dt.datetime) -> Record:
    """An admin removed rotated files past the retention period: ``purge`` = {before,
    files, chains: {worker: anchor}}; verify proves what is left from each anchor on."""
    return event_record(
        PURGE,
        f"audit files older than {purge['before']} purged by {user}: {len(purge['files'])} "
        "files",
        now=now, category=["configuration"], type_=["deletion"], user=user,
        socialgate={"purge": purge},
    )  # fmt: skip
