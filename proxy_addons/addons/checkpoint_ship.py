"""The addon that ships signed checkpoints off the host as they are made.

``--set socialgate_checkpoint_syslog=unix:/dev/log`` (the local journal or rsyslog),
``udp://collector:514`` or ``tcp://collector:6514``; empty (the default): no shipping.
Every checkpoint the audit writer appends to its checkpoint file is then also sent as a
syslog message by `proxy_addons.audit.ship.Shipper` (a bounded queue and a thread of its
own: the writer thread is never held up by the network).

A bad value is refused (OptionsError naming the option and value) before the proxy serves,
and so is shipping asked for with no signing key (there would be nothing to ship). The
shipper starts as soon as the option is set (the trail may sign its first checkpoint before
the proxy listens) and follows the checkpoint file the trail opened; at shutdown it is
closed after the trail, so the final checkpoint (written as the trail stops) is sent too.
`snapshot` and `status_line` give its counts to a status display.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, exceptions

from proxy_addons.addons.audit_trail import AuditTrail, checkpoints_path
from proxy_addons.audit import checkpoints as cps
from proxy_addons.audit.ship import OPTION, Shipper, Target, parse_target

logger = logging.getLogger(__name__)

CLOSE_SECONDS = 3.0  # at shutdown, how long queued checkpoints may still take to leave
# What decides where checkpoints go (and so whether the shipper must be rebuilt).
_WATCHED = {
    OPTION,
    "socialgate_audit_signing_key",
    "socialgate_audit_checkpoints",
    "socialgate_audit_log",
}


def configured_target(options: Any) -> Target | None:
    """The shipping target the options name; OptionsError for a bad or useless value."""
    value = getattr(options, OPTION)
    try:
        target = parse_target(value)
    except ValueError as e:
        raise exceptions.OptionsError(f"{OPTION}={value}: {e}") from None
    if target is not None and not options.socialgate_audit_signing_key.strip():
        raise exceptions.OptionsError(
            f"{OPTION}={value}: no checkpoints to ship (socialgate_audit_signing_key is empty)"
        )
    return target


class CheckpointShipping:
    def __init__(self, audit: AuditTrail) -> None:
        self.audit = audit
        self.target: Target | None = None
        self.shipper: Shipper | None = None
        self._shipping: tuple[Target, pathlib.Path] | None = None
        self._undo: Callable[[], None] | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            OPTION,
            str,
            "",
            "socialgate: also send each signed checkpoint, as it is made, to syslog: "
            "unix:/dev/log (local journal or rsyslog), udp://HOST:PORT or tcp://HOST:PORT "
            "(RFC 5424, octet-counted); empty: no shipping.",
        )

    def configure(self, updated: set[str]) -> None:
        if not updated & _WATCHED:
            return
        self.target = configured_target(ctx.options)
        # Now, not once running: the trail signs its first checkpoint as soon as it opens
        # (before the proxy listens) when checkpoint_records is small.
        self._follow(checkpoints_path(ctx.options))

    def running(self) -> None:
        # The trail's own word for its checkpoint file, should it differ from the options'.
        config = self.audit.config
        self._follow(config.writer.checkpoints_path if config is not None else None)

    def done(self) -> None:
        # After AuditTrail.done in the addon order: its final checkpoint is queued by now.
        self._stop()

    def _follow(self, path: pathlib.Path | None) -> None:
        """Ship checkpoints appended to ``path`` to the configured target (if both exist)."""
        want = (self.target, path) if self.target is not None and path is not None else None
        if want == self._shipping:
            return
        self._stop(wait=False)  # on the event loop: a collector that is away must not hold it
        if want is None:
            return
        target, path = want
        shipper = Shipper(target)
        shipper.start()
        self._undo = cps.ship_appends(path, shipper.offer)
        self.shipper, self._shipping = shipper, want
        logger.info("socialgate: shipping checkpoints of %s to %s", path, target)

    def _stop(self, *, wait: bool = True) -> None:
        """Stop shipping; what is queued still gets `CLOSE_SECONDS` (``wait=False``: the old
        shipper finishes in a thread of its own)."""
        undo, self._undo = self._undo, None
        if undo is not None:
            undo()
        shipper, self.shipper, self._shipping = self.shipper, None, None
        if shipper is None:
            return
        if wait:
            shipper.close(CLOSE_SECONDS)
        else:
            threading.Thread(
                target=shipper.close, args=(CLOSE_SECONDS,), name="socialgate-ship-close",
                daemon=True,
            ).start()  # fmt: skip

    def snapshot(self) -> dict[str, Any] | None:
        """The shipping counts for a status file (None: not shipping)."""
        shipper = self.shipper
        return None if shipper is None else shipper.stats().as_dict()

    def status_line(self) -> str:
        """One line for ``STATUS=``: ``checkpoints to …: ok, 12 shipped, 0 pending, 0 dropped``."""
        shipper = self.shipper
        return "checkpoints not shipped" if shipper is None else shipper.stats().summary()
