"""The one exception hierarchy of socialgate.

Everything a user can get wrong (a policy file, an option, a command-line
argument, a log file) raises a subclass of `SocialgateError`. The CLI catches
only this class, prints ``str(error)`` as one line and exits with status 2.
Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy_addons.problems import Problem


class SocialgateError(Exception):
    """Base class: a problem the user can fix; ``str()`` is a one-line message."""


class PolicyError(SocialgateError):
    """The policy (or a category file it names) is invalid.

    ``errors`` holds every problem found, each a `Problem` ``(path, line, message)``;
    ``str()`` is the first one as ``path:line: message``.
    """

    def __init__(self, errors: Sequence[tuple[str, int, str]]) -> None:
        if not errors:
            raise ValueError("PolicyError needs at least one error")
        self.errors = [Problem(*e) for e in errors]
        super().__init__(str(self.errors[0]))

    @property
    def path(self) -> str:
        return self.errors[0].file

    @property
    def line(self) -> int:
        return self.errors[0].line

    @property
    def message(self) -> str:
        return self.errors[0].message

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]


class ConfigError(SocialgateError):
    """A bad option or command-line value (names the option and the value)."""


class EditRefused(ConfigError):
    """A requested policy edit is not allowed (bad value, unknown id, already revoked …)."""


class AuditError(SocialgateError):
    """The audit trail cannot be written or read."""


class AuditUnavailable(AuditError):
    """A record could not be made durable; allowed social traffic must stop."""


class StateUnavailable(SocialgateError):
    """State shared by the workers of a host (``socialgate_shared_state``) cannot be used."""
