"""The checks that need the base's tree: ``git am`` and ``checkpatch.pl``.

A check is a function ``(Context) -> Iterable[Cell]``. The Context holds what
every check reads: the base, the series as mails, the manifest when the series
is kseries' own, and one worktree of the base (``workspace.checkout(base,
base.commit, "am")``, locked for the run) where the base's own scripts run and
where ``git am`` applies the series.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from kseries import proc, workspace
from kseries.base import Base, cache_root, file_lock
from kseries.mailbox import Mail, Series
from kseries.progress import NullReporter, Reporter
from kseries.render import RenderedSeries
from kseries.report import ERROR, FAIL, PASS, SKIP, WARN, Cell
from kseries.series import Manifest

TREE_NAME = "am"
_TOTAL = re.compile(r"^total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?(\d+) lines")
_MESSAGE = re.compile(r"^(ERROR|WARNING|CHECK)(?::([A-Z0-9_]+))?: (.*)$")
_AM_FAILED = re.compile(r"^error: (?:patch failed: )?(\S+?)(?::\d+)?: (.+)$")


@dataclass
class Context:
    base: Base
    series: Series
    templates: Path
    work: Path  # a scratch directory of this run
    reporter: Reporter = field(default_factory=NullReporter)
    manifest: Manifest | None = None  # set when the series is kseries' own
    rendered: RenderedSeries | None = None  # set when kseries rendered it in this run
    applied: dict[int, str] = field(default_factory=dict)  # row -> commit after git am
    tip: str = ""
    am_tried: bool = False  # applies ran (whether or not every patch applied)
    _tree: Path | None = None
    _files: dict[int, Path] = field(default_factory=dict)

    @property
    def own(self) -> bool:
        return self.manifest is not None

    def rows(self) -> Iterator[tuple[int, Mail]]:
        """(row, mail) of each patch: rows count from 1, in series order."""
        yield from enumerate(self.series.patches, start=1)

    def tree(self) -> Path:
        """The base's worktree, at the base commit (git am moves it; this puts it back)."""
        self._tree = workspace.checkout(self.base, self.base.commit, TREE_NAME)
        return self._tree

    def patch_file(self, row: int) -> Path:
        """Row's mail as a file of its own (row 0 = the cover letter)."""
        if row not in self._files:
            mail = self.series.mails[row] if self.series.cover else self.series.patches[row - 1]
            path = self.work / "mails" / f"{row:04d}.patch"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(mail.raw)
            self._files[row] = path
        return self._files[row]

    def git_env(self) -> dict[str, str]:
        """Git without the user's configuration, committing as the series' sender."""
        name, addr = parseaddr(self.series.sender)
        name, addr = name or "kseries check", addr or "kseries@localhost"
        cfg = self.work / "gitconfig"
        if not cfg.exists():
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(f"[user]\n\tname = {name}\n\temail = {addr}\n")
        return {
            "GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": addr,
            "LC_ALL": "C", "TZ": "UTC",
        }


@contextmanager
def tree_lock(base: Base) -> Iterator[None]:
    """One check run at a time uses a base's worktree."""
    path = cache_root() / "trees" / base.key / f"{TREE_NAME}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        yield


# --- Applies -----------------------------------------------------------------


def applies(ctx: Context) -> Iterable[Cell]:
    """``git am`` each patch in order on a clean worktree of the base."""
    tree = ctx.tree()
    env = ctx.git_env()
    if proc.run(["git", "-C", tree, "am", "--quit"], env=env, check=False).ok:
        tree = ctx.tree()  # a run that died in the middle of git am left its state behind
    failed = 0
    ctx.am_tried = True
    ctx.applied.clear()
    ctx.tip = ""
    for row, mail in ctx.rows():
        if failed:
            yield Cell("applies", row, SKIP, f"not tried: patch {failed} did not apply")
            continue
        ctx.reporter.update(f"git am {row}/{len(ctx.series.patches)}: {mail.subject.title}")
        res = proc.run(["git", "-C", tree, "am", "--committer-date-is-author-date",
                        ctx.patch_file(row)], env=env, check=False)
        output = res.stdout + res.stderr
        if not res.ok:
            failed = row
            proc.run(["git", "-C", tree, "am", "--abort"], env=env, check=False)
            yield Cell("applies", row, FAIL, _am_reason(output), _am_details(output))
            continue
        head = proc.run(["git", "-C", tree, "rev-parse", "HEAD"], env=env)
        ctx.applied[row] = head.stdout.strip()
        ws = [ln.strip() for ln in output.splitlines() if "whitespace" in ln]
        if ws:
            yield Cell("applies", row, WARN, "applies with whitespace errors", tuple(ws))
        else:
            yield Cell("applies", row, PASS, f"applies on {ctx.base.commit[:12]}")
    if not failed and ctx.applied:
        ctx.tip = ctx.applied[max(ctx.applied)]


def _am_details(output: str) -> tuple[str, ...]:
    return tuple(ln.strip() for ln in output.splitlines()
                 if ln.startswith(("error:", "Patch failed", "fatal:")))[:8]


def _am_reason(output: str) -> str:
    files: list[str] = []
    why = ""
    for line in output.splitlines():
        m = _AM_FAILED.match(line.strip())
        if m and m.group(1) not in files and not m.group(1).startswith("patch"):
            files.append(m.group(1))
            why = why or m.group(2)
    if files:
        return f"does not apply: {', '.join(files)} ({why})"
    lines = proc.key_lines(output, 2)
    return "does not apply: " + (" | ".join(lines) if lines else "git am failed")


# --- checkpatch ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckpatchResult:
    errors: int
    warnings: int
    checks: int
    messages: tuple[tuple[str, str, str], ...]  # (level, type, text)


def parse_checkpatch(output: str) -> CheckpatchResult | None:
    """Counts from the ``total:`` line (checkpatch exits 1 on any warning)."""
    total = None
    messages = []
    for line in output.splitlines():
        if m := _TOTAL.match(line):
            total = m
        elif m := _MESSAGE.match(line):
            messages.append((m.group(1), m.group(2) or "", m.group(3)))
    if total is None:
        return None
    return CheckpatchResult(int(total.group(1)), int(total.group(2)),
                            int(total.group(3) or 0), tuple(messages))


def run_checkpatch(tree: Path, patch: Path) -> tuple[CheckpatchResult | None, proc.Result]:
    script = tree / "scripts" / "checkpatch.pl"
    # checkpatch runs the base's scripts/spdxcheck.py with the `python3` on PATH: ours
    # first, which has ply (a dependency) for it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    res = proc.run(["perl", script, "--strict", "--show-types", "--no-color", "--root", tree,
                    patch], cwd=tree, check=False, timeout=300, env={"PATH": path})
    return parse_checkpatch(res.stdout), res


# checkpatch warnings that say "look at X": when X is fine, they are advice.
def _advice_only(ctx: Context, tree: Path, row: int, level: str, kind: str) -> str:
    if level == "WARNING" and kind == "FILE_PATH_CHANGES":
        from kseries.checks_recipients import maintained

        mail = ctx.series.patches[row - 1]
        paths = [f.path for f in mail.files if f.new or f.deleted]
        if paths and all(maintained(tree, p) for p in paths):
            return "the new files are under a MAINTAINERS entry already"
    return ""


def checkpatch(ctx: Context) -> Iterable[Cell]:
    """The base's ``scripts/checkpatch.pl --strict`` on each patch."""
    tree = ctx.tree()
    if not (tree / "scripts" / "checkpatch.pl").exists():
        yield Cell("checkpatch", 0, SKIP, "the base has no scripts/checkpatch.pl")
        return
    spdx_noted = False
    files = {row: ctx.patch_file(row) for row, _ in ctx.rows()}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        # checkpatch.pl is one perl process per patch: run them side by side
        runs = {row: pool.submit(run_checkpatch, tree, f) for row, f in files.items()}
        outcomes = {row: job.result() for row, job in runs.items()}
    for row, mail in ctx.rows():
        ctx.reporter.update(f"checkpatch {row}/{len(ctx.series.patches)}: {mail.subject.title}")
        result, res = outcomes[row]
        if result is None:
            yield Cell("checkpatch", row, ERROR, f"checkpatch.pl gave no total line "
                       f"(exit {res.returncode})", tuple(proc.key_lines(res.stdout + res.stderr)))
            continue
        if "No module named 'ply'" in res.stderr and not spdx_noted:
            spdx_noted = True
            ctx.reporter.note("checkpatch: SPDX license checks did not run "
                              "(install python3-ply to run them)")
        counted = f"{result.errors} errors, {result.warnings} warnings, {result.checks} checks"
        hard, advice = [], []
        for level, kind, text in result.messages:
            line = f"{level}:{kind}: {text}" if kind else f"{level}: {text}"
            why = _advice_only(ctx, tree, row, level, kind) if level != "CHECK" else ""
            if level == "CHECK" or why:
                advice.append(line + (f" [advice: {why}]" if why else ""))
            else:
                hard.append(line)
        if hard:
            yield Cell("checkpatch", row, FAIL, f"{counted}: {hard[0]}", tuple(hard + advice))
        elif result.errors + result.warnings > sum(1 for a in advice if "[advice:" in a):
            yield Cell("checkpatch", row, FAIL, counted, tuple(proc.key_lines(res.stdout)))
        elif advice:
            yield Cell("checkpatch", row, WARN, f"{counted}: {advice[0]}", tuple(advice))
        else:
            yield Cell("checkpatch", row, PASS, counted)
