"""How long-running stages report progress without printing.

Stages take a ``Reporter``; the CLI supplies one that draws on a terminal (rich)
or writes plain lines in CI. Library code never prints.
"""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def start(self, step: str, detail: str = "") -> None:
        """A step begins (e.g. "build", "patch 3/5 arch/x86/kvm/")."""

    def update(self, detail: str) -> None:
        """The current step moved on (a patch, a host, a line of output)."""

    def finish(self, status: str, detail: str = "") -> None:
        """The current step ended: PASS / WARN / FAIL / SKIP / DONE, with a reason."""

    def note(self, message: str) -> None:
        """A one-line message worth showing (a warning, a fallback taken)."""


class NullReporter:
    """Reports nothing: for tests and library callers that do not care."""

    def start(self, step: str, detail: str = "") -> None:
        pass

    def update(self, detail: str) -> None:
        pass

    def finish(self, status: str, detail: str = "") -> None:
        pass

    def note(self, message: str) -> None:
        pass


class RecordingReporter:
    """Keeps every event; tests use it to see what a stage reported."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def start(self, step: str, detail: str = "") -> None:
        self.events.append(("start", step, detail))

    def update(self, detail: str) -> None:
        self.events.append(("update", "", detail))

    def finish(self, status: str, detail: str = "") -> None:
        self.events.append(("finish", status, detail))

    def note(self, message: str) -> None:
        self.events.append(("note", "", message))
