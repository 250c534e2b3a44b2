"""Start the socialgate addons once the options are final, or refuse to run.

With ``mitmdump -s``, mitmproxy applies ``--set socialgate_*`` values (and those of
``config.yaml`` in its confdir) while it registers the script, inside a handler that logs and
swallows errors: a value it cannot parse (``socialgate_intercept_social=maybe``) or an option
given twice leaves the script unregistered and the proxy running *without the gate* (fail
open). This addon is loaded last: it applies those values itself, first, and stops the proxy
if they cannot be applied.

It is also the one place where the trail is opened and the policy first read (`start`):
before, mitmproxy applies the options' defaults and, when a value is refused, rolls back to
them, and an addon acting on those would open ``logs/audit.jsonl``, generate keys or read
``policies/policy.yaml`` that the user never named. `socialgate run` calls `start` itself
once it has applied its configuration, ``--set`` values and flags.
"""

from __future__ import annotations

import logging
import pathlib
import sys
from typing import Any

from mitmproxy import exceptions

from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.addons.policy_store import PolicyStore
from proxy_addons.config import CONFIG_NAME, PATH_OPTIONS, read_config
from proxy_addons.errors import ConfigError

logger = logging.getLogger(__name__)


def resolve_config_paths(options: Any) -> None:
    """Paths in ``<confdir>/config.yaml`` are relative to the file, not to mitmdump's cwd.

    mitmproxy reads the file itself and keeps a relative value as written; a socialgate path
    option still holding exactly that text is made absolute against the file's directory.
    """
    confdir = getattr(options, "confdir", "")
    if not confdir:
        return
    config = pathlib.Path(confdir).expanduser() / CONFIG_NAME
    if not config.is_file():
        return
    try:
        raw, resolved = read_config(config, resolve=False), read_config(config)
    except ConfigError:
        return  # mitmproxy has already reported what is wrong with the file
    update = {
        name: resolved[name]
        for name in PATH_OPTIONS
        if name in options
        and isinstance(raw.get(name), str)
        and getattr(options, name) == raw[name]
        and resolved[name] != raw[name]
    }
    if update:
        options.update(**update)


class StartGuard:
    def __init__(self, store: PolicyStore, audit: AuditTrail, *, start_on_load: bool = True):
        self.store = store
        self.audit = audit
        self.start_on_load = start_on_load

    def load(self, loader: Any) -> None:
        if not self.start_on_load:
            return
        options = loader.master.options
        try:
            options.process_deferred()
            resolve_config_paths(options)
            # The trail opens at ``running``: mitmproxy's own start-up checks may still fail.
            self.start(open_trail=False)
        # NotImplementedError: an option type --set cannot parse at all.
        except (exceptions.OptionsError, ValueError, NotImplementedError) as e:
            logger.error("socialgate: %s; refusing to run without the gate", e)
            # mitmdump exits 0 after a plain shutdown; like its own start-up check, exit 1.
            loader.master.event_loop.call_soon(sys.exit, 1)

    def start(self, *, open_trail: bool = True) -> None:
        """Read the policy, open the trail, put the policy in force; OptionsError on failure.

        Nothing is written when the policy cannot be read. ``open_trail=False``: the trail
        opens at ``running`` and records made before (policy-loaded) wait for it.
        """
        reading = self.store.read_configured()
        self.audit.start(now=open_trail)
        self.store.start(reading)
