"""The one error type. Only the CLI catches it, prints it and picks the exit code."""

from __future__ import annotations


class KseriesError(Exception):
    """A failure the user can act on: what is wrong, where, and what to do.

    ``exit_code`` follows the command's contract: 1 = the tool or its environment
    failed, 2 = findings (check) or a test failure (run), 3 = infrastructure failure.
    """

    def __init__(self, message: str, *, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}: {self.hint}"
        return self.message
