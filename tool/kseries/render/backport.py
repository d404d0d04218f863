"""A merged series sent as a backport to a stable or vendor tree.

The tree's name comes from the user (``--stable 6.6.y``). The subjects carry it
in place of the development list's version and RFC labels, each commit message
starts by naming the upstream commit it carries, and what had to be adapted for
the base is said in a bracketed note above the sender's Signed-off-by. The notes
are rendered from the facts the probes read (the series' ``notes`` template),
never written per base; the original authors, dates and trailers are kept.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
import tomllib
from dataclasses import dataclass
from typing import Any

from kseries.errors import KseriesError
from kseries.render.manifest import Manifest, Patch, Person
from kseries.render.templating import WRAP, Templates

TREE_NAME = re.compile(r"[A-Za-z0-9]+(?:[._+-][A-Za-z0-9]+)*")  # also a git ref component


@dataclass(frozen=True)
class Stable:
    """A backport to ``tree``, sent (and signed) by ``sender``."""

    tree: str
    sender: Person

    @property
    def key(self) -> str:
        return f"{self.tree}\0{self.sender.ident}"


def check_request(manifest: Manifest, tree: str) -> None:
    """One line for a backport that cannot be: no tree named, or a series never merged."""
    if not tree:
        raise KseriesError("--stable needs the name of the tree the backport goes to",
                           hint="e.g. --stable 6.6.y, as its subjects will say [PATCH 6.6.y n/m]")
    if not TREE_NAME.fullmatch(tree):
        raise KseriesError(f"--stable {tree!r}: not a tree name",
                           hint="letters and digits, joined by single . _ + or -, e.g. 6.6.y")
    if manifest.backport is None:
        raise KseriesError(
            f"--stable: series {manifest.id} was never merged upstream, so there is nothing "
            f"to backport (its manifest names no upstream commits)",
            hint="a backport carries merged commits: use --series merged")


def stable_manifest(manifest: Manifest, stable: Stable) -> Manifest:
    """The manifest as the backport is sent: ``[PATCH TREE n/m]``, its own cover letter."""
    assert manifest.backport is not None
    return dataclasses.replace(manifest, subject_prefix=f"PATCH {stable.tree}", rfc=False,
                               version=1, cover=manifest.backport.cover)


def notes(tpl: Templates, manifest: Manifest, **context: Any) -> dict[int, tuple[str, ...]]:
    """The adaptation notes per patch number, rendered from the facts in ``context``."""
    assert manifest.backport is not None
    name = manifest.backport.notes
    text = tpl.render(name, **context)
    try:
        entries = tomllib.loads(text).get("note", [])
    except tomllib.TOMLDecodeError as exc:
        raise KseriesError(f"{manifest.dir}/{name}: rendered to invalid TOML ({exc})") from exc
    out: dict[int, list[str]] = {}
    for i, e in enumerate(entries, start=1):
        change, note = e.get("change"), e.get("text")
        holder = [p.number for p in manifest.patches if change in p.changes]
        if not isinstance(note, str) or not note or not holder:
            raise KseriesError(f"{manifest.dir}/{name}: note {i} needs text and the change "
                               f"of a patch (change = {change!r})")
        out.setdefault(holder[0], []).append(note)
    return {n: tuple(v) for n, v in out.items()}


def bracket(name: str, items: tuple[str, ...], width: int = WRAP) -> str:
    """``[ Name: note; note ]``, filled to ``width`` with the lines after the first indented."""
    text = f"[ {name}: " + "; ".join(items) + " ]"
    return textwrap.fill(text, width, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)


def message(patch: Patch, body: str, stable: Stable, adapted: tuple[str, ...]) -> str:
    """The commit message of ``patch`` in the backport."""
    trailers = [str(t) for t in (*patch.trailers, *patch.upstream_trailers)]
    sign = f"Signed-off-by: {stable.sender.ident}"
    if adapted:
        note = bracket(stable.sender.name, adapted)
        if trailers[-1] == sign:  # the sender signed last already: the note goes above
            trailers.insert(len(trailers) - 1, note)
        else:
            trailers += [note, sign]
    elif trailers[-1] != sign:
        trailers.append(sign)
    head = f"commit {patch.upstream} upstream."
    return f"{patch.subject}\n\n{head}\n\n{body}\n\n" + "\n".join(trailers) + "\n"
