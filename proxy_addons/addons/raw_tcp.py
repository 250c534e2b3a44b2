"""Raw TCP in a social tunnel: refused at the layer choice, so no byte is ever relayed.

Raw TCP (neither HTTP nor TLS) inside a social tunnel cannot be checked request by
request, so `RawTcpGuard` refuses it unless a full exemption covers the site, on the
gate's decision for the tunnel (CONNECT target and SNI), and records the refusal as
``connection-blocked`` at stage ``tcp``.

mitmproxy 12's ``TCPLayer`` fires ``tcp_start`` and then opens the server connection and
relays every message without looking at ``flow.kill()``; a kill there only makes the audit
record contradict the wire. The layer choice is the point mitmproxy honours: when the
``next_layer`` hook leaves a ``TCPLayer`` on a connection the gate refuses, it is swapped for
`RefusedTcpLayer`, which closes the client connection. The server connection is never opened
(socialgate forces ``connection_strategy=lazy``), so nothing reaches the site.

Ordering: with ``mitmdump -s`` the script's addons run before mitmproxy's own ``NextLayer``
addon, with ``socialgate run`` after it. `guard_next_layer` asks ``NextLayer`` first (it does
nothing when a layer is already set), so both orders see the layer mitmproxy will use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from mitmproxy import connection, ctx, tcp
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import TCPLayer

from proxy_addons.addons.access import connection_access
from proxy_addons.addons.gate import ERROR_DECISION, Gate
from proxy_addons.audit.record import new_ref
from proxy_addons.decide import Outcome, Reason
from proxy_addons.policy.model import Access

logger = logging.getLogger(__name__)

# Whether raw TCP on this client connection must be refused (and the refusal recorded).
Refuses = Callable[[connection.Client], bool]

REFUSED = "socialgate_tcp_refused"  # flow.metadata key of a TCP flow whose bytes are dropped


class RefusedTcpLayer(layer.Layer):
    """Stands where a TCPLayer would: closes the client, never opens the server connection."""

    closed = False

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if not self.closed:
            self.closed = True
            yield commands.CloseConnection(self.context.client)
        # Data that was already buffered, or arrives before the close, is dropped.


def guard_next_layer(nextlayer: layer.NextLayer, refuses: Refuses) -> None:
    """Swap a raw TCP layer for `RefusedTcpLayer` when ``refuses`` says so.

    Fails closed: if anything here raises, the connection gets the refusing layer too.
    """
    try:
        if nextlayer.layer is None:
            decider = ctx.master.addons.get("nextlayer")
            if decider is not None:
                decider.next_layer(nextlayer)  # idempotent: it never overrides a set layer
        if not isinstance(nextlayer.layer, TCPLayer):
            return  # None (needs more data), HTTP, TLS, ...: judged by the other hooks
        refuse = refuses(nextlayer.context.client)
    except Exception:
        logger.exception("socialgate: error choosing the layer; refusing the connection")
        refuse = True
    if refuse:
        nextlayer.layer = RefusedTcpLayer(nextlayer.context)


def drop_if_refused(flow: tcp.TCPFlow) -> None:
    """Backstop for TCP layers mitmproxy creates without asking next_layer (an HTTP 101
    to a protocol other than WebSocket): a refused flow's messages are emptied."""
    if flow.metadata.get(REFUSED) and flow.messages:
        flow.messages[-1].content = b""


class RawTcpGuard:
    """The raw TCP hooks, on the gate's connection state, decisions and records."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        guard_next_layer(nextlayer, self.refuses)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """A TCP layer that did not come through next_layer (an HTTP 101 to another
        protocol): a refused flow is marked and its messages are dropped."""
        if self.refuses(flow.client_conn, enforcement="dropped"):
            flow.metadata[REFUSED] = True

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        drop_if_refused(flow)

    def refuses(self, client: connection.Client, *, enforcement: str = "connection-closed") -> bool:
        """Whether raw TCP on ``client`` is refused; a refusal is recorded (connection-blocked)."""
        gate = self.gate
        state = gate.conns.get(client)
        if state is None:
            return False  # not a tunnel: mitmproxy only chooses raw TCP inside CONNECT
        try:
            if state.failed:
                d = ERROR_DECISION
            else:
                names = state.names()
                d = gate.decide_connection(gate.store.require(), state.identity.user, names)
                if d.invalid:
                    return True  # a name that cannot be judged, nothing social in it: unrecorded
                if not d.social or (d.allowed and d.access is Access.FULL):
                    return False
                if d.allowed:
                    d = replace(d, outcome=Outcome.BLOCKED, reason=Reason.READ_ONLY)
        except Exception:
            logger.exception("socialgate: error deciding raw TCP flow")
            d = ERROR_DECISION
        try:
            access = connection_access(
                state.identity,
                client,
                stage="tcp",
                scheme="tcp",
                domain=d.host or state.connect_host or "",
                port=state.connect_port,
            )
            state.pending = None  # this record supersedes the connection's
            gate.audit.submit_nowait(gate.build_record(d, access, new_ref(), enforcement))
        except Exception:
            logger.exception("socialgate: could not record refused raw TCP flow")
        return True
