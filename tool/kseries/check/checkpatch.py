"""The checkpatch check: the base's own ``scripts/checkpatch.pl --strict`` on each patch.

checkpatch exits 1 on any warning, so its ``total:`` line is what counts.
Warnings that only say "look at X" are advice when X is fine (a new file that
a MAINTAINERS entry already covers, asked of kseries.base.maintainers).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base import maintainers
from kseries.check.context import Context
from kseries.check.report import ERROR, FAIL, PASS, SKIP, WARN, Cell

_TOTAL = re.compile(r"^total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?(\d+) lines")
_MESSAGE = re.compile(r"^(ERROR|WARNING|CHECK)(?::([A-Z0-9_]+))?: (.*)$")


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
        mail = ctx.series.patches[row - 1]
        paths = [f.path for f in mail.files if f.new or f.deleted]
        if paths and all(maintainers.maintained(tree, p) for p in paths):
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
