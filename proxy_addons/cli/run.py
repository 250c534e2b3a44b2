"""`socialgate run`: start mitmdump with the socialgate addons loaded from the package.

Equivalent to ``mitmdump -s proxy_addons/socialgate.py --set socialgate_policy=P …``,
but a bad policy or option is reported as one line with exit status 2 before
anything listens.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import click

from proxy_addons.addons import make_addons
from proxy_addons.cli.common import CONFIGURED, policy_option, settings
from proxy_addons.errors import ConfigError
from proxy_addons.paths import DEFAULT_AUDIT_LOG
from proxy_addons.policy.load import load_policy

DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_LISTEN_PORT = 8080


def _setup_logging() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    for name, level in (
        ("tornado", logging.WARNING),
        ("asyncio", logging.WARNING),
        ("hpack", logging.WARNING),
        ("quic", logging.WARNING),
    ):
        logging.getLogger(name).setLevel(level)


async def _serve(
    args: Sequence[str], configured_options: dict[str, Any], socialgate_options: dict[str, Any]
) -> int:
    from mitmproxy import exceptions, hooks, options
    from mitmproxy.tools import cmdline, dump
    from mitmproxy.tools.main import process_options

    _setup_logging()
    opts = options.Options()
    master = dump.DumpMaster(opts)
    ours = make_addons(start_on_load=False)
    guard = ours[-1]
    master.addons.add(*ours)
    parser = cmdline.mitmdump(opts)
    try:
        parsed = parser.parse_args(list(args))
    except SystemExit:
        return 2
    configured: set[str] = set()

    def _seen(updated: set[str]) -> None:
        configured.update(updated)

    opts.changed.connect(_seen)
    unknown = sorted(set(configured_options) - opts.keys())
    if unknown:
        raise ConfigError(f"configuration: unknown option(s) {', '.join(unknown)}")
    try:
        # The configuration file first, then --set, then this command's own flags.
        opts.update(**configured_options)
        opts.set(*parsed.setoptions, defer=True)
        process_options(parser, opts, parsed)
        opts.update(**socialgate_options)
        # Addons added by hand never get a configure call for their defaults.
        untouched = set(opts.keys()) - configured
        for addon in ours:
            master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(untouched))
        # Options final, everything checked: only now read the policy and open the trail
        # (a failed start writes nothing).
        guard.start()
    except exceptions.OptionsError as e:
        raise ConfigError(str(e)) from None
    finally:
        opts.changed.disconnect(_seen)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, master.shutdown)
    loop.add_signal_handler(signal.SIGTERM, master.shutdown)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await master.run()
    return 0


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@policy_option
@click.option(
    "--audit-log",
    metavar="FILE",
    help=f"Audit trail (JSON lines) [default: {CONFIGURED}{DEFAULT_AUDIT_LOG}]",
)
@click.option("--listen-host", metavar="HOST", help=f"[default: {CONFIGURED}{DEFAULT_LISTEN_HOST}]")
@click.option(
    "--listen-port",
    type=click.IntRange(0, 65535),
    metavar="N",
    help=f"[default: {CONFIGURED}{DEFAULT_LISTEN_PORT}]",
)
@click.argument("mitmdump_args", nargs=-1, type=click.UNPROCESSED)
def run(
    policy_path: str,
    audit_log: str | None,
    listen_host: str | None,
    listen_port: int | None,
    mitmdump_args: tuple[str, ...],
) -> int:
    """Start the proxy. Arguments after -- go to mitmdump (e.g. --set proxyauth=@htpasswd).

    With a configuration (socialgate --confdir DIR, or $SOCIALGATE_CONFDIR), its config.yaml
    is read first and DIR is mitmproxy's confdir (its CA); --set values and these flags
    override it.
    """
    # Fail before anything listens: a bad policy is one line and exit status 2.
    load_policy(policy_path)
    conf = settings()
    configured = dict(conf.options)
    if conf.confdir is not None:
        configured.setdefault("confdir", str(conf.confdir))
    configured.setdefault("listen_host", DEFAULT_LISTEN_HOST)
    configured.setdefault("listen_port", DEFAULT_LISTEN_PORT)
    socialgate_options: dict[str, Any] = {
        "socialgate_policy": policy_path,
        "connection_strategy": "lazy",
    }
    for name, value in (
        ("socialgate_audit_log", audit_log),
        ("listen_host", listen_host),
        ("listen_port", listen_port),
    ):
        if value is not None:
            socialgate_options[name] = value
    rc = asyncio.run(_serve(mitmdump_args, configured, socialgate_options))
    sys.stdout.flush()
    return rc
