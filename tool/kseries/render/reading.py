"""What every probe shares: the error naming the file and the fact, and block bodies."""

from __future__ import annotations

from typing import Protocol

from kseries.errors import KseriesError
from kseries.render import csource


class TreeReader(Protocol):
    def read(self, path: str) -> str | None:
        """The file's text at the base commit, or None when it does not exist."""


class ProbeError(KseriesError):
    def __init__(self, path: str, expected: str, detail: str = "") -> None:
        msg = f"{path}: cannot find {expected}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg, hint="this base differs from what kseries knows; see the facts")


def need(tree: TreeReader, path: str) -> str:
    text = tree.read(path)
    if text is None:
        raise ProbeError(path, "the file", "it does not exist in this base")
    return text


def block_body(text: str, start: str, path: str, what: str) -> str:
    try:
        s, e = csource.block(text, start)
    except csource.ParseError as exc:
        raise ProbeError(path, what, str(exc)) from exc
    return text[text.index("{", s) + 1:e - 1]
