"""The gate: mitmproxy hooks → decide → enforce.

A flow is judged on every name it shows: the CONNECT target, the TLS SNI (as
sent) and, once intercepted, every name of each request: each Host header,
:authority and an absolute-form target (`proxy_addons.addons.conn_state`). A
name that cannot be normalised is refused, never "not social". Non-social TLS is passed
through untouched and unrecorded. Social traffic is intercepted so that
blocked users get a block page and exempt users' requests are checked one by
one against the policy in force at that moment.

mitmproxy logs an exception raised in a hook and lets the flow continue, so
every hook here catches everything and turns it into a block: fail closed.

The gate keeps the hooks and the enforcement; the records are built in
`proxy_addons.audit.record`, the code-of-conduct reminder's HTTP side is
`proxy_addons.addons.reminder`, and pages become responses in
`proxy_addons.addons.enforce`; raw TCP in tunnels and oversized requests are refused
(`addons.raw_tcp`, `addons.limits`) on the gate's state, decisions and records.
"""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import mode_specs

from proxy_addons.addons.access import connect_access, connection_access, request_access
from proxy_addons.addons.conn_state import ConnState, names_of_request
from proxy_addons.addons.enforce import (
    may_stream,
    must_kill,
    page_response,
    record_first,
    refuse_invalid_name,
)
from proxy_addons.addons.identity import (
    authenticate_by_address,
    identify,
    let_source_address_in,
    scrub_password,
)
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.addons.read_only import BodyChecks, needs_body_check, request_writes
from proxy_addons.addons.reminder import ReminderDesk
from proxy_addons.audit.record import Access as AccessSeen
from proxy_addons.audit.record import Record, access_record, new_ref
from proxy_addons.audit.trail import AccessAudit
from proxy_addons.decide import Decision, Outcome, Reason, decide, normalise_names
from proxy_addons.identity import ANONYMOUS, Identity
from proxy_addons.limits import Violation
from proxy_addons.pages.render import block_page
from proxy_addons.policy.model import Policy

logger = logging.getLogger(__name__)

ERROR_DECISION = Decision(Outcome.BLOCKED, Reason.ERROR)
SUPPORTED_MODES = (mode_specs.RegularMode, mode_specs.UpstreamMode)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Gate:
    def __init__(
        self,
        store: PolicyStore,
        audit: AccessAudit,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.intercept_social = True
        self.reminder = ReminderDesk(store, audit, clock)
        self.body_checks = BodyChecks(self._enforce_request, self._fail_closed)
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

    def decide_connection(
        self, policy: Policy, user: str | None, names: Sequence[str | None]
    ) -> Decision:
        """A decision before any request is seen: whether one will be depends on interception."""
        return decide(policy, user, names, None, self.clock(), intercepted=self.intercept_social)

    def build_record(
        self,
        decision: Decision,
        access: AccessSeen,
        ref: str,
        enforcement: str | None = None,
        limit: Violation | None = None,
    ) -> Record:
        policy = self.store.current
        return access_record(
            decision,
            access,
            ref=ref,
            policy_sha256=policy.sha256 if policy else "",
            now=self.clock(),
            enforcement=enforcement,
            limit=limit,
        )

    def _block_response(
        self,
        d: Decision,
        site: str,
        ref: str,
        *,
        html: bool,
        cache_control: str,
        headers: dict[str, str] | None = None,
    ) -> http.Response:
        page = block_page(d, self.store.current, site=site, ref=ref, now=self.clock(), html=html)
        return page_response(403, page, cache_control, headers)

    # -- hooks -----------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        """Hosts named in identity.source_addresses need not answer proxyauth's challenge."""
        try:
            authenticate_by_address(self.store.current, client)
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
            if flow.response is not None and not let_source_address_in(policy, flow):
                return
            identity = identify(policy, flow)
            state.connect_host = flow.request.host
            state.connect_port = flow.request.port
            state.identity = identity
            d = self.decide_connection(policy, identity.user, [flow.request.host])
            if d.invalid:
                refuse_invalid_name(flow, streams=False)
                return
            if not d.social:
                return
            if self.intercept_social:
                if d.blocked:
                    # The block page comes once the tunnel's first request is intercepted;
                    # until then keep the attempt on file in case it never comes.
                    access = connect_access(identity, flow, domain=d.host)
                    state.pending = self.build_record(d, access, new_ref())
                return
            await self._enforce_connect_without_interception(flow, d, identity)
        except Exception:
            logger.exception("socialgate: error deciding CONNECT %s", flow.request.host)
            state.failed = True
            self._refuse_connect(flow, ERROR_DECISION, new_ref())

    async def _enforce_connect_without_interception(
        self, flow: http.HTTPFlow, d: Decision, identity: Identity
    ) -> None:
        ref = new_ref()
        access = connect_access(identity, flow, domain=d.host, status=None if d.allowed else 403)
        if d.allowed:
            d = await record_first(
                self.audit, self.build_record(d, access, ref), d, f"blocking {d.host}"
            )
            if d.allowed:
                return
            access = replace(access, status_code=403)
        self.audit.submit_nowait(self.build_record(d, access, ref))
        self._refuse_connect(flow, d, ref)

    def _refuse_connect(self, flow: http.HTTPFlow, d: Decision, ref: str) -> None:
        flow.response = self._block_response(
            d, d.host or flow.request.host, ref, html=False, cache_control="no-store"
        )

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        state = self._state(client)
        try:
            state.saw_client_hello(data.client_hello)
            if state.failed:
                return  # intercept: the requests will be blocked
            policy = self._policy()
            names = state.names()
            if not any(names) and data.context.server.address:
                names = [str(data.context.server.address[0])]
            d = self.decide_connection(policy, state.identity.user, names)
            if d.invalid:
                return  # intercept: each request is refused (400), unrecorded
            if not d.social:
                data.ignore_connection = True  # never decrypt, never record
                return
            if not self.intercept_social and d.allowed:
                data.ignore_connection = True  # recorded at CONNECT
                return
            if d.blocked and state.pending is None:
                access = connection_access(
                    state.identity, client, stage="tls", domain=d.host, port=state.connect_port
                )
                state.pending = self.build_record(d, access, new_ref())
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
            names = names_of_request(state, req)
            if state is not None and state.failed:
                raise RuntimeError("an earlier hook failed on this connection")
            writes = request_writes(req)
            d = decide(policy, identity.user, names, req.method, self.clock(), writes=writes)
            if d.invalid:
                refuse_invalid_name(flow, streams=may_stream(req))
                return
            if not d.social:
                return
            if state is not None:
                state.pending = None  # this request's record supersedes the connection's
            if needs_body_check(req, d):
                # HTTP/2-3: whether a body follows is known only once it is buffered.
                refused = self.body_checks.hold(flow, d, identity)
                if refused is not None:
                    self._block_request(flow, refused, identity, new_ref(), kill=True)
                return
            await self._enforce_request(flow, d, identity)
        except Exception:
            logger.exception("socialgate: error deciding request to %s", flow.request.pretty_host)
            if state is not None:
                state.pending = None
            self._fail_closed(flow)

    async def request(self, flow: http.HTTPFlow) -> None:
        await self.body_checks.request(flow)  # read-only HTTP/2-3 requests held for their body

    def _fail_closed(self, flow: http.HTTPFlow) -> None:
        """Block a request whose decision raised; kill it if even that fails."""
        try:
            self._block_request(flow, self.error_decision(flow), ANONYMOUS, new_ref())
        except Exception:
            logger.exception("socialgate: cannot serve the block page; killing the flow")
            flow.kill()

    def error_decision(self, flow: http.HTTPFlow) -> Decision:
        names = normalise_names([flow.request.host, flow.request.host_header])
        host = names[0] if names else ""
        return replace(ERROR_DECISION, host=host, names=names)

    async def _enforce_request(self, flow: http.HTTPFlow, d: Decision, identity: Identity) -> None:
        ref = new_ref()
        if d.allowed and identity.user is not None:
            answered = await self.reminder.answer(flow, d, identity.user, ref)
            if answered is None:
                return
            d = answered
        if d.allowed:
            access = request_access(identity, flow, domain=d.host, log_query=self.audit.log_query)
            d = await record_first(
                self.audit, self.build_record(d, access, ref), d, f"blocking {d.host}"
            )
            if d.allowed:
                flow.metadata["socialgate"] = {"outcome": "allowed", "ref": ref}
                return
        self._block_request(flow, d, identity, ref)

    def _block_request(
        self, flow: http.HTTPFlow, d: Decision, identity: Identity, ref: str, *, kill: bool = False
    ) -> None:
        # A streamed body may already be on its way upstream once the hook returns, and
        # setting a response on a streamed request crashes mitmproxy's handler; an unbounded
        # body would keep the client uploading until it was read: kill both.
        try:
            killed = kill or must_kill(flow.request)
        except Exception:
            logger.exception("socialgate: cannot tell whether %s streams; killing it", ref)
            killed = True
        status = None if killed else 403
        flow.metadata["socialgate"] = {"outcome": "blocked", "ref": ref, "reason": str(d.reason)}
        try:
            access = request_access(
                identity,
                flow,
                domain=d.host or flow.request.pretty_host,
                log_query=self.audit.log_query,
                status=status,
            )
            enforcement = "killed" if killed else "block-page"
            self.audit.submit_nowait(self.build_record(d, access, ref, enforcement))
        except Exception:
            logger.exception("socialgate: could not record blocked request %s", ref)
        if killed:
            flow.kill()
            return
        flow.response = self._block_response(
            d,
            d.host or flow.request.pretty_host,
            ref,
            html="text/html" in flow.request.headers.get("accept", ""),
            cache_control="no-store, max-age=0",
            headers={"X-Socialgate-Ref": ref},
        )

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Browsers that learn an HTTP/3 endpoint could try QUIC around the proxy.
        if flow.response is not None and flow.metadata.get("socialgate"):
            flow.response.headers.pop("alt-svc", None)
