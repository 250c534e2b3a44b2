"""`Problem`: one thing wrong at one place in a file, the shape every checker reports.

The policy loader, the audit verifier and the log reader all report
``file:line: message``. A named tuple, so a problem still compares equal to
(and unpacks like) the plain ``(file, line, message)`` triple callers and tests
have always used.
"""

from __future__ import annotations

from typing import NamedTuple


class Problem(NamedTuple):
    file: str
    line: int  # 1-based; 0 when the problem is with the file as a whole
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )
