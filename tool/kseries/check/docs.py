"""New Sphinx warnings in the documentation a patch touches (htmldocs), by identity.

For each patch that touches an .rst file under Documentation/, ``make
SPHINXDIRS=<dir> htmldocs`` builds the top-level directory of each such file
(Documentation/virt/kvm/api.rst: ``virt``) at the patch's parent and at the
patch, out of tree, in a worktree of its own (``build-htmldocs``) that moves
from parent to patch. Sphinx keeps its environment in the output directory, so
each build re-reads only the documents that changed; the files the patch
touches are re-dated before both builds so that both read them, and report
their warnings, alike.

A message's identity is its file, the section title it sits under, its level
and its text with numbers and the tree's path normalised: no line number. The
messages compared are those in the files the patch touches; one is new when its
identity is not among the parent's. A docs build that fails outright is a FAIL.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base import workspace
from kseries.base.bases import Base
from kseries.base.cache import cache_root
from kseries.build import kbuild
from kseries.check import bisect, compare
from kseries.check.context import Context
from kseries.check.report import ERROR, FAIL, PASS, SKIP, Cell
from kseries.errors import KseriesError

NAME = "htmldocs"
TREE = "build-htmldocs"
SPHINX = "sphinx-build"
INSTALL = "apt-get install python3-sphinx python3-yaml (Debian), or pip install the base's " \
          "Documentation/sphinx/requirements.txt"

# "/abs/Documentation/virt/kvm/api.rst:7884: WARNING: Title underline too short."
# (the line number is missing for whole-file messages; kernel-doc says "warning:")
_MSG = re.compile(r"^(?:(?P<file>[^\s:][^:]*?)(?::(?P<line>\d+))?: )?"
                  r"(?P<level>WARNING|ERROR|CRITICAL|SEVERE|warning|error): (?P<text>.*)$")
_OTHER = re.compile(r"^(make(\[\d+\])?: |\s+[A-Z]{2,}\s{2,}|Using \S+ theme|source directory:|"
                    r"reST markup error:|Sphinx .*error:)")
_UNDERLINE = re.compile(r"""^([=\-~^"'`#*+:.<>_])\1{2,}\s*$""")
_NUMBER = re.compile(r"\b\d+\b")


@dataclass(frozen=True)
class Message:
    """One WARNING/ERROR/CRITICAL of a docs build, where Sphinx put it."""

    file: str  # relative to the source tree ("" when Sphinx names no file)
    line: int  # 0 when Sphinx gives none
    level: str
    text: str  # the message's first paragraph, lines joined by a space


@dataclass(frozen=True, order=True)
class Identity:
    file: str
    section: str  # the title of the section the message sits in, numbers normalised
    level: str
    message: str  # numbers normalised

    def __str__(self) -> str:
        where = f"{self.file} ({self.section}): " if self.section else \
            f"{self.file}: " if self.file else ""
        return f"{where}{self.level}: {self.message}"


def parse(output: str, root: str = "") -> list[Message]:
    """Sphinx's messages in a docs build's output, in order (repeats included).

    A message runs on over the lines after it up to a blank line (the quoted
    source that follows is not part of it) or the next line of other output.
    """
    found: list[Message] = []
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        m = _MSG.match(lines[i])
        i += 1
        if not m:
            continue
        text = [m.group("text").strip()]
        while i < len(lines) and lines[i].strip() and not _MSG.match(lines[i]) \
                and not _OTHER.match(lines[i]):
            text.append(lines[i].strip())
            i += 1
        level = m.group("level").upper()
        joined = " ".join(t for t in text if t)
        if root:
            joined = joined.replace(root.rstrip("/") + "/", "")
        path = compare.relative(m.group("file") or "", root)
        found.append(Message(path, int(m.group("line") or 0),
                             "CRITICAL" if level == "SEVERE" else level, joined))
    return found


def section_of(lines: list[str], line: int) -> str:
    """The title of the section that ``line`` (1-based) of an .rst file is in."""
    for i in range(min(line, len(lines)) - 1, 0, -1):
        title = lines[i - 1]
        if _UNDERLINE.match(lines[i]) and title.strip() and not title[0].isspace() \
                and not _UNDERLINE.match(title):
            return _NUMBER.sub("N", title.strip())
    return ""


def identities(messages: Iterable[Message], src: Path) -> set[Identity]:
    """The identities of ``messages``, sections read from the files under ``src``."""
    texts: dict[str, list[str]] = {}
    found = set()
    for m in messages:
        if m.file and m.file not in texts:
            try:
                texts[m.file] = (src / m.file).read_text(errors="replace").splitlines()
            except OSError:
                texts[m.file] = []
        section = section_of(texts.get(m.file, []), m.line) if m.line else ""
        found.add(Identity(m.file, section, m.level, _NUMBER.sub("N", m.text)))
    return found


def sphinx_dirs(ctx: Context, commit: str, rst: list[str]) -> tuple[list[str], list[str]]:
    """(the SPHINXDIRS that build ``rst``, the files no single directory builds)."""
    repo = workspace.scratch_repo(ctx.base)
    dirs: list[str] = []
    left: list[str] = []
    for f in rst:
        parts = f.split("/")
        top = parts[1] if len(parts) > 2 else ""
        if top and (top in dirs or workspace.git(
                repo, "cat-file", "-e", f"{commit}:Documentation/{top}/index.rst",
                check=False).ok):
            if top not in dirs:
                dirs.append(top)
        else:
            left.append(f)
    return dirs, left


def out_dir(base: Base) -> Path:
    return cache_root() / "build" / base.key / NAME


@dataclass(frozen=True)
class Outcome:
    ok: bool
    src: Path  # the docs worktree, at the commit built
    messages: list[Message]
    log: Path
    seconds: float
    tail: str  # the end of the output, for a failure's key lines


def build(base: Base, commit: str, dirs: list[str], files: list[str], log: str) -> Outcome:
    """``make SPHINXDIRS=<dirs> htmldocs`` with the docs worktree at ``commit``."""
    t0 = time.monotonic()
    src = workspace.checkout(base, commit, TREE)
    now = time.time()
    for f in files:  # both builds re-read what the patch touches, whatever the move did
        if (src / f).is_file():
            os.utime(src / f, (now, now))
    out = out_dir(base)
    path = out / "kseries-logs" / f"{log}.log"
    path.unlink(missing_ok=True)
    argv = ["make", "-C", str(src), f"O={out}", f"-j{os.cpu_count() or 2}",
            f"SPHINXDIRS={' '.join(dirs)}", "htmldocs"]
    res = proc.run(argv, env=kbuild.make_env(), log_to=path, check=False,
                   what=f"make SPHINXDIRS={' '.join(dirs)} htmldocs", timeout=3600)
    text = path.read_text(errors="replace")  # res.stdout is the log's tail only
    return Outcome(res.ok, src, parse(text, str(src)), path, time.monotonic() - t0, res.stdout)


def first_errors(outcome: Outcome, limit: int = 6) -> list[str]:
    """What to show of a failed docs build: its gravest messages, else make's key lines."""
    grave = [f"{m.file}:{m.line}: {m.level}: {m.text}" for m in outcome.messages
             if m.level in ("CRITICAL", "ERROR")]
    grave.sort(key=lambda s: ": CRITICAL: " not in s)
    return (grave or proc.key_lines(outcome.tail))[:limit]


def check(ctx: Context) -> Iterator[Cell]:
    for row, parent, commit in bisect.rows_in_order(ctx):
        files = bisect.touched(ctx, parent, commit)
        rst = [f for f in files if f.startswith("Documentation/") and f.endswith(".rst")]
        if not rst:
            yield Cell(NAME, row, PASS, "no .rst touched")
            continue
        if shutil.which(SPHINX) is None:
            yield Cell(NAME, row, SKIP, f"{SPHINX} not found: {INSTALL}")
            continue
        dirs, left = sphinx_dirs(ctx, commit, rst)
        if not dirs:
            yield Cell(NAME, row, SKIP, f"{left[0]} is in no Documentation/ directory with "
                       "an index.rst: only a full `make htmldocs` builds it")
            continue
        try:
            yield _compare(ctx, row, parent, commit, dirs, files, left)
        except KseriesError as exc:
            yield Cell(NAME, row, ERROR, str(exc))


def _compare(ctx: Context, row: int, parent: str, commit: str, dirs: list[str],
             files: list[str], left: list[str]) -> Cell:
    which = " ".join(dirs)
    with kbuild.tree_locked(ctx.base, NAME):
        ctx.reporter.update(f"patch {row}: make SPHINXDIRS={which} htmldocs before and after")
        before = build(ctx.base, parent, dirs, files, f"before-{row}")
        if not before.ok and parent == ctx.base.commit:
            lines = first_errors(before)
            return Cell(NAME, row, ERROR, f"htmldocs does not build at the base itself: "
                        f"{lines[0] if lines else ''}",
                        details=(*lines, f"log: {before.log}", f"is Sphinx whole? {INSTALL}"))
        old = identities(before.messages, before.src)  # read before the tree moves on
        after = build(ctx.base, commit, dirs, files, f"patch-{row}")
        new_ids = identities(after.messages, after.src)
    took = f"{before.seconds:.1f}s + {after.seconds:.1f}s"
    if not after.ok:
        lines = first_errors(after)
        return Cell(NAME, row, FAIL, f"SPHINXDIRS={which} htmldocs fails: "
                    f"{lines[0] if lines else ''}", details=(*lines, f"log: {after.log}"))
    touched = set(files)
    new = sorted(i for i in new_ids - old if i.file in touched)
    not_built = f"; not built: {', '.join(left)}" if left else ""
    if new:
        return Cell(NAME, row, FAIL, f"{len(new)} new Sphinx message(s): {new[0]}",
                    details=(*(str(i) for i in new), f"log: {after.log}{not_built}"))
    rst = ", ".join(f for f in files if f.endswith(".rst"))
    return Cell(NAME, row, PASS, f"SPHINXDIRS={which}: no new warnings in {rst} "
                f"({took}){not_built}")
