"""Options and helpers shared by the `socialgate` commands."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import click

from proxy_addons.audit.files import default_logs, series
from proxy_addons.config import CONFDIR_ENV, Settings, find_confdir, load_settings
from proxy_addons.paths import DEFAULT_POLICY
from proxy_addons.policy.model import Exemption


def settings(ctx: click.Context | None = None) -> Settings:
    """The installation's settings: ``socialgate --confdir DIR``, else $SOCIALGATE_CONFDIR.

    Read once per command line (the root context caches them).
    """
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:  # called outside a command (tests, other tools): the environment's
        return load_settings(find_confdir())
    root = ctx.find_root()
    cached = root.meta.get("socialgate.settings")
    if isinstance(cached, Settings):
        return cached
    given = root.params.get("confdir")
    loaded = load_settings(find_confdir(given if isinstance(given, str) else None))
    root.meta["socialgate.settings"] = loaded
    return loaded


def configured_logs() -> list[pathlib.Path]:
    """The default file set of every audit command: the trail beside the configured live log
    (its rotated files, other workers, the admin chain), and the admin chain wherever it is."""
    conf = settings()
    files = default_logs(pathlib.Path(conf.audit_log))
    admin = pathlib.Path(conf.admin_log)
    if admin.parent.resolve() != pathlib.Path(conf.audit_log).parent.resolve():
        files.extend(series(admin))
    return files


def seal_dir() -> pathlib.Path | None:
    """The configured epoch key state directory (forward-secure sealing), or None."""
    value = settings().options.get("socialgate_audit_seal_dir")
    return pathlib.Path(value) if isinstance(value, str) and value.strip() else None


def from_settings(attribute: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback: the value given, else the configured one (``Settings.<attribute>``)."""

    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        return value if value is not None else getattr(settings(ctx), attribute)

    return callback


KEY_HINT = (
    f"create the keys with 'socialgate init', or point --confdir/${CONFDIR_ENV} at the "
    "installation whose keys these are"
)
CONFIGURED = f"from config.yaml in --confdir/${CONFDIR_ENV}, else "


def policy_option[F: Callable[..., Any]](f: F) -> F:
    """``--policy PATH`` (default: $SOCIALGATE_POLICY, else the configuration's, else
    policies/policy.yaml)."""
    return click.option(
        "--policy",
        "policy_path",
        default=None,
        callback=from_settings("policy"),
        show_default="$SOCIALGATE_POLICY, " + CONFIGURED + DEFAULT_POLICY,
        metavar="PATH",
        help="Policy file.",
    )(f)


def format_option[F: Callable[..., Any]](
    *choices: str, help: str | None = None
) -> Callable[[F], F]:
    """``--format`` (into ``fmt``): one of ``choices``, the first by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=help,
    )


def holder_text(ex: Exemption) -> str:
    """Who holds the exemption, in words: ``user alice`` or ``group press``."""
    return f"user {ex.user}" if ex.user is not None else f"group {ex.group}"
