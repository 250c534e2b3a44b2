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
from proxy_addons.addons.audit_trail import AuditTrail
from proxy_addons.cli.common import policy_option
from proxy_addons.errors import ConfigError
from proxy_addons.paths import DEFAULT_AUDIT_LOG
from proxy_addons.policy.load import load_policy


def _setup_logging() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    for name, level in (
        ("tornado", logging.WARNING),
        ("asyncio", logging.WARNING),
        ("hpack", logging.WARNING),
        ("quic", logging.WARNING),
    ):
        logging.getLogger(name).setLevel(level)


async def _serve(args: Sequence[str], socialgate_options: dict[str, Any]) -> int:
    from mitmproxy import exceptions, hooks, options
    from mitmproxy.tools import cmdline, dump
    from mitmproxy.tools.main import process_options

    _setup_logging()
    opts = options.Options()
    master = dump.DumpMaster(opts)
    ours = make_addons()
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
    try:
        opts.set(*parsed.setoptions, defer=True)
        process_options(parser, opts, parsed)
        opts.update(**socialgate_options)
        # Addons added by hand never get a configure call for their defaults.
        untouched = set(opts.keys()) - configured
        for addon in ours:
            master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(untouched))
        # Everything checked: only now open the audit trail (a failed start writes nothing).
        for addon in ours:
            if isinstance(addon, AuditTrail):
                addon.start()
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
    default=DEFAULT_AUDIT_LOG,
    show_default=True,
    metavar="FILE",
    help="Audit trail (JSON lines).",
)
@click.option("--listen-host", default="127.0.0.1", show_default=True, metavar="HOST")
@click.option(
    "--listen-port", type=click.IntRange(0, 65535), default=8080, show_default=True, metavar="N"
)
@click.argument("mitmdump_args", nargs=-1, type=click.UNPROCESSED)
def run(
    policy_path: str,
    audit_log: str,
    listen_host: str,
    listen_port: int,
    mitmdump_args: tuple[str, ...],
) -> int:
    """Start the proxy. Arguments after -- go to mitmdump (e.g. --set proxyauth=@htpasswd)."""
    # Fail before anything listens: a bad policy is one line and exit status 2.
    load_policy(policy_path)
    socialgate_options = {
        "socialgate_policy": policy_path,
        "socialgate_audit_log": audit_log,
        "listen_host": listen_host,
        "listen_port": listen_port,
        "connection_strategy": "lazy",
    }
    rc = asyncio.run(_serve(mitmdump_args, socialgate_options))
    sys.stdout.flush()
    return rc
