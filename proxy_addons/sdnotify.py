"""systemd's ``sd_notify`` protocol in plain socket code (no new dependency).

With ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a unix datagram socket
(a path, or ``@name`` in the abstract namespace); each message is a few
``KEY=value`` lines: ``READY=1``, ``RELOADING=1`` with ``MONOTONIC_USEC``,
``STOPPING=1``, ``STATUS=…`` (one line, shown by ``systemctl status``).
Without the variable every call is a no-op, so the proxy runs the same
outside systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as ``MONOTONIC_USEC`` wants it."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` (``KEY=value`` each) to ``$NOTIFY_SOCKET``; False if not sent."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # not under systemd (or a vsock address, which we do not speak)
    payload = "\n".join(f.replace("\n", " ") for f in fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(payload, address)
    except OSError as e:
        logger.warning("socialgate: cannot notify the service manager: %s", e)
        return False
    return True
