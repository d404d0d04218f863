"""The CLI's reporter: a live status line on a terminal, plain lines in CI."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.status import Status

_drawing: list[Live | Status] = []  # live displays on the terminal now


def interactive(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("CI")


def drawn(display: Live | Status) -> Live | Status:
    """Start ``display`` and remember it, so that an error can stop it (stop_drawing)."""
    display.start()
    _drawing.append(display)
    return display


def done(display: Live | Status) -> None:
    """Stop a display started with ``drawn``."""
    display.stop()
    if display in _drawing:
        _drawing.remove(display)


def stop_drawing() -> None:
    """Stop every live display: the error line then stands alone on the terminal."""
    while _drawing:
        _drawing.pop().stop()


class ConsoleReporter:
    """Implements kseries.progress.Reporter for humans and CI logs."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        stream = stream or sys.stderr
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.live = interactive(stream) if live is None else live
        self._status: Status | None = None
        self._step = ""
        self._t0 = time.monotonic()

    def _elapsed(self) -> str:
        secs = int(time.monotonic() - self._t0)
        return f"{secs // 60}:{secs % 60:02d}"

    def start(self, step: str, detail: str = "") -> None:
        self._step = step
        self._t0 = time.monotonic()
        text = f"{step}: {detail}" if detail else step
        if self.live:
            if self._status is None:
                self._status = self.console.status(text)
                drawn(self._status)
            else:
                self._status.update(text)
        else:
            self.console.print(f"[{step}] {detail}".rstrip(), markup=False)

    def update(self, detail: str) -> None:
        if self.live and self._status is not None:
            self._status.update(f"{self._step}: {detail}  ({self._elapsed()})")
        else:
            self.console.print(f"[{self._step}] {detail}", markup=False)

    def finish(self, status: str, detail: str = "") -> None:
        if self._status is not None:
            done(self._status)
            self._status = None
        line = f"[{self._step}] {status} ({self._elapsed()})"
        if detail:
            line += f" {detail}"
        self.console.print(line, markup=False)

    def note(self, message: str) -> None:
        self.console.print(f"note: {message}", markup=False)
