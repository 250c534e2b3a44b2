"""Entry point of the `socialgate` command.

Exit codes: 0 ok, 1 the command found a problem (e.g. verify failed),
2 bad usage or bad input. Errors are one line on stderr, no traceback: only
`SocialgateError` is caught here; anything else is a bug and shows as one.
"""

from __future__ import annotations

import sys

import click

from proxy_addons.cli.audit import audit
from proxy_addons.cli.check import check
from proxy_addons.cli.exempt import exempt
from proxy_addons.cli.init import init
from proxy_addons.cli.policy import policy
from proxy_addons.cli.run import run
from proxy_addons.config import CONFDIR_ENV
from proxy_addons.errors import SocialgateError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="socialgate")
@click.option(
    "--confdir",
    metavar="DIR",
    help=f"The installation's configuration directory (its config.yaml names the policy, "
    f"logs and keys; default ${CONFDIR_ENV}, else none: the defaults below the working "
    f"directory).",
)
def cli(confdir: str | None) -> None:
    """socialgate: block social networking unless an approved exemption applies."""


cli.add_command(init)
cli.add_command(run)
cli.add_command(policy)
cli.add_command(check)
cli.add_command(exempt)
cli.add_command(audit)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="socialgate", standalone_mode=False)
    except SocialgateError as e:
        click.echo(f"socialgate: {e}", err=True)
        sys.exit(2)
    except click.UsageError as e:
        # One line, like every other error: the command, what is wrong, where help is.
        cmd = e.ctx.command_path if e.ctx is not None else "socialgate"
        click.echo(f"{cmd}: {e.format_message()} (see '{cmd} --help')", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"socialgate: {e.format_message()}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("socialgate: aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
