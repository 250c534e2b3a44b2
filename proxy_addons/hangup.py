"""SIGHUP from the first moment of start-up: remembered, then a reload once the proxy runs.

SIGHUP's default action ends the process, and a service manager counts that as a
clean exit (``Restart=on-failure`` does not bring the gate back). `catch_early`
replaces the default with a handler that only remembers the signal, as early as
each way of starting allows (`socialgate run`: when the package's CLI is imported,
before mitmproxy is; ``mitmdump -s``: when the script is loaded). Once the event
loop runs, the policy watcher `attach`es its reload: a SIGHUP that came before
triggers one reload then. `detach` puts the remembering handler back, so a
SIGHUP during shutdown does not cut the final audit records short.

Pure: no mitmproxy, no event loop of its own.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType

_pending = False


def _remember(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True


def catch_early() -> bool:
    """Remember SIGHUP instead of dying of it; False where that is impossible here."""
    try:
        current = signal.getsignal(signal.SIGHUP)
        if current in (signal.SIG_DFL, None):
            signal.signal(signal.SIGHUP, _remember)
        return True
    except (AttributeError, ValueError, OSError):
        # No SIGHUP on this platform, or not the main thread.
        return False


def pending() -> bool:
    """Whether a SIGHUP arrived that no reload has answered yet."""
    return _pending


def attach(loop: asyncio.AbstractEventLoop, reload: Callable[[], None]) -> None:
    """Call ``reload`` on the loop for every SIGHUP, and now for one that came before.

    Raises like `loop.add_signal_handler` (not the main thread, no signals here).
    """
    global _pending
    loop.add_signal_handler(signal.SIGHUP, reload)
    if _pending:
        _pending = False
        loop.call_soon(reload)


def detach(loop: asyncio.AbstractEventLoop) -> None:
    """Stop reloading on SIGHUP; until exit a SIGHUP is only remembered."""
    loop.remove_signal_handler(signal.SIGHUP)  # restores the default action: replace it
    catch_early()
