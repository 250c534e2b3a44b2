"""The decision: a pure function of (policy, identity, names, method, time).

No I/O, no mitmproxy: the gate, `socialgate check` and the benchmarks all call
the same code, so what an admin is told is what the proxy does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from proxy_addons.hosts import (
    Match,
    name_pieces,
    network_address,
    normalise_host,
    parse_ip,
    printable,
)
from proxy_addons.policy.model import READ_ONLY_METHODS, Access, Exemption, Policy
from proxy_addons.requestfacts import Write

SEP = "\x1f"  # separates category and site in SiteIndex values


class Outcome(StrEnum):
    ALLOWED = "allowed"
    BLOCKED = "blocked"
    NOT_SOCIAL = "not-social"
    # A name that steers the request cannot be normalised and nothing social is in it:
    # refused (400), not recorded (non-social traffic never is).
    INVALID = "invalid"


class Reason(StrEnum):
    NOT_SOCIAL = "not-social"
    EXEMPTION = "exemption"
    NO_IDENTITY = "no-identity"
    NO_EXEMPTION = "no-exemption"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    OUTSIDE_SCHEDULE = "outside-schedule"
    READ_ONLY = "read-only"
    # A read-only exemption cannot be checked per request without interception.
    READ_ONLY_NOT_ENFORCEABLE = "read-only-not-enforceable"
    NAME_MISMATCH = "name-mismatch"
    ERROR = "error"
    AUDIT_UNAVAILABLE = "audit-unavailable"
    # A name that steers the request cannot be normalised: never judged "not social".
    INVALID_NAME = "invalid-name"
    REQUEST_TOO_LARGE = "request-too-large"  # over a socialgate_max_* request limit
    # From a trusted load balancer, without an X-Forwarded-For that names the client.
    BAD_FORWARDED_FOR = "bad-forwarded-for"


# How close an exemption came to applying: the closest one explains a block.
_CLOSENESS = {
    Reason.REVOKED: 1,
    Reason.EXPIRED: 2,
    Reason.NOT_YET_VALID: 2,
    Reason.OUTSIDE_SCHEDULE: 3,
    Reason.READ_ONLY_NOT_ENFORCEABLE: 4,
    Reason.READ_ONLY: 4,
}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: Reason
    host: str = ""  # the social name that decided it
    category: str = ""
    entry: str = ""  # the list entry or network that matched
    site: str = ""
    exemption_id: str | None = None  # applied, or the closest one when blocked
    access: Access | None = None
    names: tuple[str, ...] = ()  # every distinct normalised name seen
    name_mismatch: bool = False
    writes: tuple[Write, ...] = ()  # why the request writes, when a read-only rule refused it

    @property
    def social(self) -> bool:
        return self.outcome is Outcome.ALLOWED or self.outcome is Outcome.BLOCKED

    @property
    def invalid(self) -> bool:
        """Refused for a name that cannot be normalised, with nothing social in it."""
        return self.outcome is Outcome.INVALID

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    @property
    def blocked(self) -> bool:
        return self.outcome is Outcome.BLOCKED


NOT_SOCIAL = Decision(Outcome.NOT_SOCIAL, Reason.NOT_SOCIAL)
INVALID = Decision(Outcome.INVALID, Reason.INVALID_NAME)


@dataclass(frozen=True, slots=True)
class SiteMatch:
    host: str
    category: str
    entry: str
    site: str


def classify(policy: Policy, host: str) -> SiteMatch | None:
    """Which blocked category and site a normalised host belongs to, if any."""
    m: Match | None = policy.index.domains.match(host)
    # Only IP literals can match networks; skip the costly parse for names.
    if m is None and policy.index.networks and (host[0].isdigit() or ":" in host):
        ip = parse_ip(host)
        if ip is not None:
            m = policy.index.networks.match(network_address(ip))
    if m is None:
        return None
    category, _, site = m.value.partition(SEP)
    return SiteMatch(host, category, m.entry, site or m.entry)


def covers(exemption: Exemption, match: SiteMatch) -> bool:
    """Whether the exemption's sites include the matched host."""
    host = match.host
    for s in exemption.sites:
        if s in (match.category, match.site, host) or host.endswith("." + s):
            return True
    return False


def exemption_verdict(
    policy: Policy,
    exemption: Exemption,
    method: str | None,
    now: dt.datetime,
    *,
    writes: Collection[Write] = (),
    intercepted: bool = True,
) -> Reason | None:
    """Why a covering exemption does not apply now (None: it applies).

    ``method`` None means a connection-level check (CONNECT, ClientHello):
    the method is checked later, per request, once intercepted. ``writes`` are the
    reasons the request writes (`proxy_addons.requestfacts.writes`).
    """
    tz = exemption.schedule.timezone if exemption.schedule else policy.timezone
    today = now.astimezone(tz).date()
    if exemption.revoked is not None and today >= exemption.revoked.date:
        return Reason.REVOKED
    if today < exemption.granted:
        return Reason.NOT_YET_VALID
    if today > exemption.expires:
        return Reason.EXPIRED
    if exemption.schedule is not None and not exemption.schedule.allows(now):
        return Reason.OUTSIDE_SCHEDULE
    if exemption.access is Access.READ_ONLY:
        if not intercepted:
            return Reason.READ_ONLY_NOT_ENFORCEABLE
        # Read-only: only reading methods, and nothing else in the request that writes
        # (a body, a method override, any upgrade to a two-way channel).
        if method is not None and (method.upper() not in READ_ONLY_METHODS or writes):
            return Reason.READ_ONLY
    return None


def decide_site(
    policy: Policy,
    user: str | None,
    match: SiteMatch,
    method: str | None,
    now: dt.datetime,
    *,
    writes: Collection[Write] = (),
    intercepted: bool = True,
    names: tuple[str, ...] = (),
    mismatch: bool = False,
) -> Decision:
    """The decision for one social name (``names``/``mismatch`` describe the whole flow)."""

    def made(outcome: Outcome, reason: Reason, ex: Exemption | None = None) -> Decision:
        return Decision(
            outcome,
            reason,
            match.host,
            match.category,
            match.entry,
            match.site,
            ex.id if ex else None,
            ex.access if ex else None,
            names,
            mismatch,
        )

    if user is None:
        return made(Outcome.BLOCKED, Reason.NO_IDENTITY)
    closest: tuple[int, Reason, Exemption] | None = None
    for ex in policy.exemptions_by_user.get(user, ()):
        if not covers(ex, match):
            continue
        why = exemption_verdict(policy, ex, method, now, writes=writes, intercepted=intercepted)
        if why is None:
            return made(Outcome.ALLOWED, Reason.EXEMPTION, ex)
        rank = _CLOSENESS.get(why, 0)
        if closest is None or rank > closest[0]:
            closest = (rank, why, ex)
    if closest is None:
        return made(Outcome.BLOCKED, Reason.NO_EXEMPTION)
    _, why, ex = closest
    d = made(Outcome.BLOCKED, why, ex)
    if why is Reason.READ_ONLY:
        return replace(d, writes=_write_reasons(method, writes))
    return d


def _write_reasons(method: str | None, writes: Collection[Write]) -> tuple[Write, ...]:
    """What a read-only exemption refused, in `Write` order (the method first)."""
    found = set(writes)
    if method is not None and method.upper() not in READ_ONLY_METHODS:
        found.add(Write.METHOD)
    return tuple(w for w in Write if w in found)


def split_names(names: Sequence[str | None]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Distinct normalised names in the order seen, and the names that do not normalise."""
    out: list[str] = []
    bad: list[str] = []
    for name in names:
        if not name:
            continue
        n = normalise_host(name)
        if n is None:
            if name not in bad:
                bad.append(name)
        elif n not in out:
            out.append(n)
    return tuple(out), tuple(bad)


def normalise_names(names: Sequence[str | None]) -> tuple[str, ...]:
    """Distinct normalised names, in the order seen; unparseable names kept, made printable."""
    good, bad = split_names(names)
    return good + tuple(printable(b) for b in bad)


def _decide_invalid(policy: Policy, good: tuple[str, ...], bad: tuple[str, ...]) -> Decision:
    """A flow with a name that does not normalise: refused, as social if anything in it is."""
    names = good + tuple(printable(b) for b in bad)
    candidates = list(good)
    for b in bad:
        candidates.extend(name_pieces(b))
    for host in candidates:
        match = classify(policy, host)
        if match is not None:
            return Decision(
                Outcome.BLOCKED,
                Reason.INVALID_NAME,
                match.host,
                match.category,
                match.entry,
                match.site,
                names=names,
                name_mismatch=len(names) > 1,
            )
    return replace(INVALID, names=names)


def decide(
    policy: Policy,
    user: str | None,
    names: Sequence[str | None],
    method: str | None,
    now: dt.datetime,
    *,
    writes: Collection[Write] = (),
    intercepted: bool = True,
) -> Decision:
    """Decide a flow from every name it showed (CONNECT host, SNI, Host header).

    If any name is social the flow is social. A name blocked on its own
    merits blocks the flow with its reason; when every social name would be
    allowed but the names disagree with a non-social one (domain fronting),
    the flow is blocked as a name mismatch. A name that cannot be normalised
    refuses the flow (`Reason.INVALID_NAME`): blocked as social when the name,
    a piece of it or another name is social, else `Outcome.INVALID` (refused,
    unrecorded).
    """
    normed, bad = split_names(names)
    if bad:
        return _decide_invalid(policy, normed, bad)
    mismatch = len(normed) > 1
    decisions: list[Decision] = []
    for host in normed:
        match = classify(policy, host)
        if match is not None:
            d = decide_site(
                policy,
                user,
                match,
                method,
                now,
                writes=writes,
                intercepted=intercepted,
                names=normed,
                mismatch=mismatch,
            )
            if not d.allowed:
                return d
            decisions.append(d)
    if not decisions:
        return replace(NOT_SOCIAL, names=normed) if mismatch else NOT_SOCIAL
    if len(decisions) < len(normed):
        return replace(decisions[0], outcome=Outcome.BLOCKED, reason=Reason.NAME_MISMATCH)
    return decisions[0]
