"""The edit engine: changes anchored on the base's own content, not line numbers.

An edit names a file, an operation, an anchor (a regular expression that must
match exactly once), optionally a scope the anchor is searched in (a C block
or a document section), the text to put in, and the fact it relies on. A
missing or ambiguous anchor raises ``AnchorError`` naming the file, the anchor
and the fact that was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kseries.errors import KseriesError
from kseries.render import csource

OPS = ("insert_after", "insert_before", "replace", "create")


class AnchorError(KseriesError):
    def __init__(self, edit: Edit, problem: str) -> None:
        where = f" within {edit.within!r}" if edit.within else ""
        super().__init__(
            f"{edit.file}: anchor {edit.anchor!r}{where} {problem}; expected {edit.fact}",
            hint="the base differs here; adapt the probe or the template",
        )


@dataclass(frozen=True)
class Edit:
    file: str
    op: str
    text: str
    fact: str = "the content this change is anchored on"
    anchor: str = ""
    within: str = ""  # regex of the first line of the scope
    until: str = ""  # regex ending the scope; default: the block's closing brace

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise KseriesError(f"{self.file}: unknown edit op {self.op!r}",
                               hint=f"use one of {', '.join(OPS)}")
        if self.op != "create" and not self.anchor:
            raise KseriesError(f"{self.file}: edit {self.op!r} has no anchor")


def apply(content: str | None, edit: Edit) -> str:
    """Apply one edit to a file's content (None: the file does not exist yet)."""
    if edit.op == "create":
        if content is not None:
            raise AnchorError(edit, "cannot create: the file already exists")
        return edit.text
    if content is None:
        raise AnchorError(edit, "cannot be searched: the file does not exist")
    lo, hi = scope(content, edit)
    try:
        pattern = re.compile(edit.anchor, re.MULTILINE)
    except re.error as exc:
        raise AnchorError(edit, f"is not a valid regular expression ({exc})") from exc
    matches = list(pattern.finditer(content, lo, hi))
    if not matches:
        raise AnchorError(edit, "was not found")
    if len(matches) > 1:
        raise AnchorError(edit, f"matches {len(matches)} times")
    m = matches[0]
    if edit.op == "replace":
        return content[: m.start()] + edit.text + content[m.end():]
    if edit.op == "insert_after":
        end = content.find("\n", max(m.end() - 1, m.start()))
        pos = len(content) if end < 0 else end + 1
    else:
        pos = content.rfind("\n", 0, m.start()) + 1
    text = edit.text if edit.text.endswith("\n") else edit.text + "\n"
    return content[:pos] + text + content[pos:]


def scope(content: str, edit: Edit) -> tuple[int, int]:
    if not edit.within:
        return 0, len(content)
    starts = list(re.finditer(edit.within, content, re.MULTILINE))
    if len(starts) != 1:
        problem = "is not in this file" if not starts else f"has {len(starts)} scopes"
        raise AnchorError(edit, f"cannot be searched: the scope {problem}")
    start = starts[0].start()
    if edit.until:
        end = re.compile(edit.until, re.MULTILINE).search(content, starts[0].end())
        return start, end.start() if end else len(content)
    try:
        return csource.block_at(content, start)
    except csource.ParseError as exc:
        raise AnchorError(edit, f"cannot be searched: {exc}") from exc
