"""The gate: mitmproxy hooks → decide → enforce.

A flow is judged on every name it shows: the CONNECT target, the TLS SNI and,
once intercepted, each request's Host / :authority. Non-social TLS is passed
through untouched and unrecorded. Social traffic is intercepted so that
blocked users get a block page and exempt users' requests are checked one by
one against the policy in force at that moment.

mitmproxy logs an exception raised in a hook and lets the flow continue, so
every hook here catches everything and turns it into a block: fail closed.
"""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote

from mitmproxy import connection, ctx, exceptions, http, tcp, tls
from mitmproxy.proxy import mode_specs
from mitmproxy.utils import human

from proxy_addons.audit.addon import AuditTrail
from proxy_addons.audit.record import Access as AccessSeen
from proxy_addons.audit.record import Record, access_record, event_record, new_ref
from proxy_addons.decide import Decision, Outcome, Reason, decide, normalise_names
from proxy_addons.errors import AuditUnavailable
from proxy_addons.identity import (
    ANONYMOUS,
    Identity,
    identify,
    peer_ip,
    scrub_password,
    source_address_user,
)
from proxy_addons.pages.render import block_page, reminder_page
from proxy_addons.policy.model import Access, Policy
from proxy_addons.policystore import PolicyStore
from proxy_addons.readonly import (
    BodyChecks,
    can_switch_to_streaming,
    has_body,
    needs_body_check,
    refuse_body,
    request_writes,
)
from proxy_addons.reminder import ACK_PREFIX, Reminders, is_navigation, safe_next

logger = logging.getLogger(__name__)

ERROR_DECISION = Decision(Outcome.BLOCKED, Reason.ERROR)
SUPPORTED_MODES = (mode_specs.RegularMode, mode_specs.UpstreamMode)


_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})


def may_stream(request: http.Request) -> bool:
    """Whether mitmproxy streams (or may yet start streaming) this request's body.

    Chunked bodies are buffered first and switched to streaming once they pass
    ``stream_large_bodies``, so they must be judged before the first byte arrives.
    """
    if request.stream:
        return True
    limit = human.parse_size(ctx.options.stream_large_bodies)
    if limit is None:
        return False
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        return True
    length = request.headers.get("content-length")
    if length is not None:
        try:
            return int(length) > limit
        except ValueError:
            return True
    # HTTP/2 and HTTP/3 bodies need no length header.
    return not request.http_version.startswith("HTTP/1") and request.method.upper() not in _BODYLESS


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class ConnState:
    """What the gate learnt about one client connection (a CONNECT tunnel)."""

    connect_host: str | None = None
    connect_port: int = 443
    sni: str | None = None
    identity: Identity = ANONYMOUS
    failed: bool = False  # a hook raised: every request on this connection is blocked
    # A connection-level block, written at disconnect unless a request record replaced it,
    # so one attempt gives one record.
    pending: Record | None = None


class Gate:
    def __init__(
        self,
        store: PolicyStore,
        audit: AuditTrail,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.intercept_social = True
        self.reminders = Reminders()
        self.body_checks = BodyChecks()
        self.conns: weakref.WeakKeyDictionary[connection.Client, ConnState] = (
            weakref.WeakKeyDictionary()
        )

    # -- options ---------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            "socialgate_intercept_social",
            bool,
            True,
            """
            Intercept TLS to social networking sites, so blocked users get the block page and
            exempt users' requests are checked one by one. When false, a blocked user's CONNECT
            is refused with 403 and read-only exemptions block (they cannot be enforced).
            """,
        )

    def configure(self, updated: set[str]) -> None:
        if "socialgate_intercept_social" in updated:
            self.intercept_social = ctx.options.socialgate_intercept_social
        if "mode" in updated:
            for spec in ctx.options.mode:
                try:
                    mode = mode_specs.ProxyMode.parse(spec)
                except ValueError:
                    continue  # mitmproxy's proxyserver reports malformed modes itself
                if not isinstance(mode, SUPPORTED_MODES):
                    raise exceptions.OptionsError(
                        f"mode={spec}: socialgate supports only regular and upstream proxy "
                        "modes (other modes can carry QUIC or bypass proxy authentication)"
                    )
        if "connection_strategy" in updated and ctx.options.connection_strategy != "lazy":
            # Eager connects upstream before we decide: a blocked request would still
            # reach the social network's server.
            logger.info("socialgate: setting connection_strategy=lazy")
            ctx.options.update(connection_strategy="lazy")

    def running(self) -> None:
        if ctx.options.connection_strategy != "lazy":
            ctx.options.update(connection_strategy="lazy")
        if self.store.current is None:
            # mitmproxy would carry on without us (fail open): stop the proxy instead.
            logger.error("socialgate: no valid policy is loaded; refusing to run")
            ctx.master.shutdown()

    # -- helpers ---------------------------------------------------------------------

    def _policy(self) -> Policy:
        return self.store.require()

    def _state(self, client: connection.Client) -> ConnState:
        state = self.conns.get(client)
        if state is None:
            state = self.conns[client] = ConnState()
        return state

    def _access(
        self,
        identity: Identity,
        client: connection.Client,
        *,
        stage: str,
        scheme: str,
        domain: str,
        port: int,
        flow: http.HTTPFlow | None = None,
        status: int | None = None,
    ) -> AccessSeen:
        method = path = query = None
        if flow is not None and stage == "request":
            method = flow.request.method
            path, _, q = flow.request.path.partition("?")
            query = q if self.audit.log_query and q else None
        return AccessSeen(
            user=identity.user,
            identity=identity.source,
            groups=identity.groups,
            source_ip=peer_ip(client),
            source_port=int(client.peername[1]) if client.peername else 0,
            stage=stage,
            scheme=scheme,
            domain=domain,
            port=port,
            method=method,
            path=path,
            query=query,
            status_code=status,
        )

    def _record(self, decision: Decision, access: AccessSeen, ref: str) -> Record:
        policy = self.store.current
        return access_record(
            decision,
            access,
            ref=ref,
            policy_sha256=policy.sha256 if policy else "",
            now=self.clock(),
        )

    # -- hooks -----------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        """Hosts named in identity.source_addresses need not answer proxyauth's challenge."""
        try:
            policy = self.store.current
            proxyauth = ctx.master.addons.get("proxyauth")
            if policy is None or proxyauth is None or proxyauth.validator is None:
                return
            user = source_address_user(policy, client)
            if user is not None:
                proxyauth.authenticated[client] = (user, "")
        except Exception:
            logger.exception("socialgate: error in client_connected")

    def client_disconnected(self, client: connection.Client) -> None:
        state = self.conns.pop(client, None)
        if state is not None and state.pending is not None:
            self.audit.submit_nowait(state.pending)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.error or not flow.live:
            return
        state = self._state(flow.client_conn)
        try:
            scrub_password(flow)
            policy = self._policy()
            if flow.response is not None and not self._let_source_address_in(policy, flow):
                return
            identity = identify(policy, flow)
            state.connect_host = flow.request.host
            state.connect_port = flow.request.port
            state.identity = identity
            d = decide(
                policy,
                identity.user,
                [flow.request.host],
                None,
                self.clock(),
                intercepted=self.intercept_social,
            )
            if not d.social:
                return
            if self.intercept_social:
                if d.blocked:
                    # The block page comes once the tunnel's first request is intercepted;
                    # until then keep the attempt on file in case it never comes.
                    access = self._connect_access(flow, d, identity)
                    state.pending = self._record(d, access, new_ref())
                return
            await self._enforce_connect_without_interception(flow, d, identity)
        except Exception:
            logger.exception("socialgate: error deciding CONNECT %s", flow.request.host)
            state.failed = True
            self._refuse_connect(flow, ERROR_DECISION, new_ref())

    def _connect_access(
        self, flow: http.HTTPFlow, d: Decision, identity: Identity, status: int | None = None
    ) -> AccessSeen:
        return self._access(
            identity,
            flow.client_conn,
            stage="connect",
            scheme="https",
            domain=d.host,
            port=flow.request.port,
            status=status,
        )

    def _let_source_address_in(self, policy: Policy, flow: http.HTTPFlow) -> bool:
        """Undo proxyauth's 407 for a host the policy identifies by its address."""
        resp = flow.response
        if resp is None or resp.status_code != 407:
            return False
        user = source_address_user(policy, flow.client_conn)
        if user is None:
            return False
        flow.response = None
        flow.metadata["proxyauth"] = (user, "")
        return True

    async def _enforce_connect_without_interception(
        self, flow: http.HTTPFlow, d: Decision, identity: Identity
    ) -> None:
        ref = new_ref()
        access = self._connect_access(flow, d, identity, status=None if d.allowed else 403)
        if d.allowed:
            try:
                await self.audit.submit(self._record(d, access, ref))
                return
            except AuditUnavailable as e:
                logger.error("socialgate: blocking %s: %s", d.host, e)
                d = replace(d, outcome=Outcome.BLOCKED, reason=Reason.AUDIT_UNAVAILABLE)
                access = replace(access, status_code=403)
        self.audit.submit_nowait(self._record(d, access, ref))
        self._refuse_connect(flow, d, ref)

    def _refuse_connect(self, flow: http.HTTPFlow, d: Decision, ref: str) -> None:
        page = block_page(
            d,
            self.store.current,
            site=d.host or flow.request.host,
            ref=ref,
            now=self.clock(),
            html=False,
        )
        flow.response = http.Response.make(
            403,
            page.content,
            {"Content-Type": page.content_type, "Cache-Control": "no-store"},
        )

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        state = self._state(client)
        try:
            state.sni = data.client_hello.sni
            if state.failed:
                return  # intercept: the requests will be blocked
            policy = self._policy()
            names = [state.connect_host, state.sni]
            if not any(names) and data.context.server.address:
                names = [str(data.context.server.address[0])]
            d = decide(
                policy,
                state.identity.user,
                names,
                None,
                self.clock(),
                intercepted=self.intercept_social,
            )
            if not d.social:
                data.ignore_connection = True  # never decrypt, never record
                return
            if not self.intercept_social and d.allowed:
                data.ignore_connection = True  # recorded at CONNECT
                return
            if d.blocked and state.pending is None:
                access = self._access(
                    state.identity,
                    client,
                    stage="tls",
                    scheme="https",
                    domain=d.host,
                    port=state.connect_port,
                )
                state.pending = self._record(d, access, new_ref())
        except Exception:
            logger.exception("socialgate: error deciding TLS ClientHello (SNI %s)", state.sni)
            state.failed = True  # intercept and block every request on this connection

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = self.conns.get(flow.client_conn)
        try:
            scrub_password(flow)
            policy = self._policy()
            identity = identify(policy, flow)
            req = flow.request
            if state is not None and state.connect_host is not None:
                names = [state.connect_host, state.sni, req.host, req.host_header]
            else:
                names = [req.host, req.host_header]
            if state is not None and state.failed:
                raise RuntimeError("an earlier hook failed on this connection")
            writes = request_writes(req)
            d = decide(policy, identity.user, names, req.method, self.clock(), writes=writes)
            if not d.social:
                return
            if state is not None:
                state.pending = None  # this request's record supersedes the connection's
            if needs_body_check(req, d):
                # HTTP/2-3: whether a body follows is known only once it is buffered.
                if can_switch_to_streaming():
                    self._block_request(flow, refuse_body(d), identity, new_ref(), kill=True)
                    return
                self.body_checks.defer(flow, d, identity)
                return
            await self._enforce_request(flow, d, identity)
        except Exception:
            logger.exception("socialgate: error deciding request to %s", flow.request.pretty_host)
            if state is not None:
                state.pending = None
            try:
                self._block_request(flow, self._error_decision(flow), ANONYMOUS, new_ref())
            except Exception:
                logger.exception("socialgate: cannot serve the block page; killing the flow")
                flow.kill()

    async def request(self, flow: http.HTTPFlow) -> None:
        """A read-only request whose body was unknown at requestheaders, now buffered."""
        waiting = self.body_checks.take(flow)
        if waiting is None or flow.response or flow.error or not flow.live:
            return
        d, identity = waiting
        try:
            if has_body(flow.request):
                d = refuse_body(d)
            await self._enforce_request(flow, d, identity)
        except Exception:
            logger.exception("socialgate: error deciding request to %s", flow.request.pretty_host)
            try:
                self._block_request(flow, self._error_decision(flow), ANONYMOUS, new_ref())
            except Exception:
                logger.exception("socialgate: cannot serve the block page; killing the flow")
                flow.kill()

    def _error_decision(self, flow: http.HTTPFlow) -> Decision:
        names = normalise_names([flow.request.host, flow.request.host_header])
        host = names[0] if names else ""
        return replace(ERROR_DECISION, host=host, names=names)

    async def _enforce_request(self, flow: http.HTTPFlow, d: Decision, identity: Identity) -> None:
        ref = new_ref()
        if d.allowed and identity.user is not None:
            req = flow.request
            if req.path.startswith(ACK_PREFIX):
                d = await self._acknowledge(flow, d, identity.user)
                if d.allowed:
                    return
            elif self._reminder_due(flow, identity.user):
                self._show_reminder(flow, d, identity, ref)
                return
        if d.allowed:
            access = self._access(
                identity,
                flow.client_conn,
                stage="request",
                scheme=flow.request.scheme,
                domain=d.host,
                port=flow.request.port,
                flow=flow,
            )
            try:
                await self.audit.submit(self._record(d, access, ref))
            except AuditUnavailable as e:
                logger.error("socialgate: blocking %s: %s", d.host, e)
                d = replace(d, outcome=Outcome.BLOCKED, reason=Reason.AUDIT_UNAVAILABLE)
            else:
                flow.metadata["socialgate"] = {"outcome": "allowed", "ref": ref}
                return
        self._block_request(flow, d, identity, ref)

    def _reminder_due(self, flow: http.HTTPFlow, user: str) -> bool:
        policy = self.store.current
        if policy is None or policy.reminder is None:
            return False
        req = flow.request
        if not is_navigation(
            req.method, req.headers.get("accept", ""), req.headers.get("sec-fetch-dest")
        ):
            return False
        return self.reminders.due(user, policy.reminder.every, self.clock())

    def _show_reminder(
        self, flow: http.HTTPFlow, d: Decision, identity: Identity, ref: str
    ) -> None:
        """Answer with the code-of-conduct page instead; the request itself is not sent."""
        policy = self._policy()
        assert identity.user is not None
        now = self.clock()
        nonce = self.reminders.issue(identity.user, ref, now)
        ack_url = f"{ACK_PREFIX}{nonce}?next={quote(safe_next(flow.request.path), safe='')}"
        page = reminder_page(
            policy,
            site=d.site or d.host,
            exemption_id=d.exemption_id or "",
            ack_url=ack_url,
            ref=ref,
        )
        record = self._event(
            "reminder-shown",
            f"code-of-conduct reminder shown to {identity.user}",
            d,
            identity,
            flow,
        )
        record["event"]["id"] = ref
        self.audit.submit_nowait(record)
        flow.response = http.Response.make(
            200,
            page.content,
            {"Content-Type": page.content_type, "Cache-Control": "no-store, max-age=0"},
        )

    async def _acknowledge(self, flow: http.HTTPFlow, d: Decision, user: str) -> Decision:
        """Record the acknowledgement, then send the browser where it was going."""
        req = flow.request
        nonce = req.path[len(ACK_PREFIX) :].split("?", 1)[0]
        pending = self.reminders.acknowledge(user, nonce, self.clock())
        if pending is None:
            flow.response = http.Response.make(
                400,
                b"This acknowledgement link has expired or is not yours. Reload the page.\n",
                {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"},
            )
            return d
        identity = identify(self._policy(), flow)
        record = self._event(
            "reminder-acknowledged", f"{user} acknowledged the code of conduct", d, identity, flow
        )
        record["socialgate"]["reminder_ref"] = pending.ref
        try:
            await self.audit.submit(record)
        except AuditUnavailable as e:
            logger.error("socialgate: acknowledgement not recorded: %s", e)
            self.reminders.acknowledged.pop(user, None)
            return replace(d, outcome=Outcome.BLOCKED, reason=Reason.AUDIT_UNAVAILABLE)
        target = safe_next(unquote(req.query.get("next", "/")))
        flow.response = http.Response.make(
            303, b"", {"Location": target, "Cache-Control": "no-store"}
        )
        return d

    def _event(
        self, action: str, message: str, d: Decision, identity: Identity, flow: http.HTTPFlow
    ) -> Record:
        policy = self.store.current
        return event_record(
            action,
            message,
            now=self.clock(),
            category=["web"],
            type_=["info"],
            user=identity.user,
            socialgate={
                "exemption_id": d.exemption_id,
                "site": d.site,
                "domain": d.host,
                "source_ip": peer_ip(flow.client_conn),
                "policy_sha256": policy.sha256 if policy else "",
            },
        )

    def _block_request(
        self, flow: http.HTTPFlow, d: Decision, identity: Identity, ref: str, *, kill: bool = False
    ) -> None:
        # A streamed body may already be on its way upstream once the hook returns, and
        # setting a response on a streamed request crashes mitmproxy's handler: kill it.
        try:
            killed = kill or may_stream(flow.request)
        except Exception:
            logger.exception("socialgate: cannot tell whether %s streams; killing it", ref)
            killed = True
        status = None if killed else 403
        flow.metadata["socialgate"] = {"outcome": "blocked", "ref": ref, "reason": str(d.reason)}
        try:
            access = self._access(
                identity,
                flow.client_conn,
                stage="request",
                scheme=flow.request.scheme,
                domain=d.host or flow.request.pretty_host,
                port=flow.request.port,
                flow=flow,
                status=status,
            )
            record = self._record(d, access, ref)
            record["socialgate"]["enforcement"] = "killed" if killed else "block-page"
            self.audit.submit_nowait(record)
        except Exception:
            logger.exception("socialgate: could not record blocked request %s", ref)
        if killed:
            flow.kill()
            return
        accept = flow.request.headers.get("accept", "")
        page = block_page(
            d,
            self.store.current,
            site=d.host or flow.request.pretty_host,
            ref=ref,
            now=self.clock(),
            html="text/html" in accept,
        )
        flow.response = http.Response.make(
            403,
            page.content,
            {
                "Content-Type": page.content_type,
                "Cache-Control": "no-store, max-age=0",
                "X-Socialgate-Ref": ref,
            },
        )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Browsers that learn an HTTP/3 endpoint could try QUIC around the proxy.
        if flow.response is not None and flow.metadata.get("socialgate"):
            flow.response.headers.pop("alt-svc", None)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Raw TCP inside a social tunnel (not HTTP, not TLS) cannot be checked: block it."""
        try:
            state = self.conns.get(flow.client_conn)
            if state is None:
                return
            if state.failed:
                flow.kill()
                return
            policy = self._policy()
            d = decide(
                policy,
                state.identity.user,
                [state.connect_host, state.sni],
                None,
                self.clock(),
                intercepted=self.intercept_social,
            )
            if not d.social:
                return
            if d.allowed and d.access is Access.FULL:
                return
            if d.allowed:
                d = replace(d, outcome=Outcome.BLOCKED, reason=Reason.READ_ONLY)
            access = self._access(
                state.identity,
                flow.client_conn,
                stage="tcp",
                scheme="tcp",
                domain=d.host,
                port=state.connect_port,
            )
            state.pending = None
            self.audit.submit_nowait(self._record(d, access, new_ref()))
            flow.kill()
        except Exception:
            logger.exception("socialgate: error deciding raw TCP flow")
            flow.kill()
