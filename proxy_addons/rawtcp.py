"""Raw TCP in a social tunnel: refused at the layer choice, so no byte is ever relayed.

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

from mitmproxy import connection, ctx, tcp
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import TCPLayer

logger = logging.getLogger(__name__)

# Whether raw TCP on this client connection must be refused (the gate records the refusal).
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
