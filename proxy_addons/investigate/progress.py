"""A progress bar on stderr for long reads, only when stderr is a terminal.

Warnings (damaged lines) share stderr with the bar, so they go through
`StderrConsole.warn`, which clears the bar before printing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from proxy_addons.investigate.read import Progress

_MIN_SECONDS = 0.1  # redraw at most ten times a second
_WIDTH = 30


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class StderrConsole:
    """Owns stderr for one command: warnings and, on a terminal, the bar."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.bar: TerminalProgress | None = None

    def warn(self, text: str) -> None:
        if self.bar is not None:
            self.bar.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def progress(self, total: int) -> Progress:
        if not self.tty:
            return Progress(total)
        self.bar = TerminalProgress(total, self.stream)
        return self.bar


class TerminalProgress(Progress):
    def __init__(self, total: int, stream: TextIO) -> None:
        super().__init__(total)
        self.stream = stream
        self.started = time.monotonic()
        self.drawn_at = 0.0
        self.visible = False

    def advance(self, delta: int) -> None:
        super().advance(delta)
        now = time.monotonic()
        # Short reads finish before a bar would help; start drawing after half a second.
        if now - self.started > 0.5 and now - self.drawn_at >= _MIN_SECONDS:
            self.drawn_at = now
            self.draw()

    def draw(self) -> None:
        share = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(share * _WIDTH)
        line = (
            f"\rreading audit logs [{'#' * filled}{'.' * (_WIDTH - filled)}] "
            f"{share:4.0%} {_size(self.done)} of {_size(self.total)}"
        )
        self.stream.write(line)
        self.stream.flush()
        self.visible = True

    def clear(self) -> None:
        if self.visible:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.visible = False

    def close(self) -> None:
        self.clear()
