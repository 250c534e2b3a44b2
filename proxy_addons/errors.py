"""The one exception hierarchy of socialgate.

Everything a user can get wrong (a policy file, an option, a command-line
argument, a log file) raises a subclass of `SocialgateError`. The CLI catches
only this class, prints ``str(error)`` as one line and exits with status 2.
Anything else escaping is a bug and keeps its traceback.
"""

from __future__ import annotations


class SocialgateError(Exception):
    """Base class: a problem the user can fix; ``str()`` is a one-line message."""


class PolicyError(SocialgateError):
    """The policy (or a category file it names) is invalid.

    ``errors`` holds every problem found, each as ``(path, line, message)``;
    ``str()`` is the first one as ``path:line: message``.
    """

    def __init__(self, errors: list[tuple[str, int, str]]) -> None:
        if not errors:
            raise ValueError("PolicyError needs at least one error")
        self.errors = errors
        super().__init__(self.format(*errors[0]))

    @staticmethod
    def format(path: str, line: int, message: str) -> str:
        return f"{path}:{line}: {message}" if line else f"{path}: {message}"

    @property
    def path(self) -> str:
        return self.errors[0][0]

    @property
    def line(self) -> int:
        return self.errors[0][1]

    @property
    def message(self) -> str:
        return self.errors[0][2]

    def lines(self) -> list[str]:
        return [self.format(*e) for e in self.errors]


class ConfigError(SocialgateError):
    """A bad option or command-line value (names the option and the value)."""


class AuditError(SocialgateError):
    """The audit trail cannot be written or read."""


class AuditUnavailable(AuditError):
    """A record could not be made durable; allowed social traffic must stop."""
