"""Refuse to run when mitmproxy could not load the socialgate addons.

With ``mitmdump -s``, mitmproxy applies ``--set socialgate_*`` values while it
registers the script, inside a handler that logs and swallows errors: a value
it cannot parse (``socialgate_intercept_social=maybe``) or an option given
twice leaves the script unregistered and the proxy running *without the
gate* (fail open). This addon is loaded last: it applies those values itself,
first, and stops the proxy if they cannot be applied.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from mitmproxy import exceptions

logger = logging.getLogger(__name__)


class StartGuard:
    def load(self, loader: Any) -> None:
        options = loader.master.options
        try:
            options.process_deferred()
        # NotImplementedError: an option type --set cannot parse at all.
        except (exceptions.OptionsError, ValueError, NotImplementedError) as e:
            logger.error("socialgate: %s; refusing to run without the gate", e)
            # mitmdump exits 0 after a plain shutdown; like its own start-up check, exit 1.
            loader.master.event_loop.call_soon(sys.exit, 1)
