"""The applies check: ``git am`` of each patch, in order, on a clean worktree of the base.

The commits it makes (``ctx.applied``, ``ctx.tip``) are what the build checks build.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kseries import proc
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP, WARN, Cell

_AM_FAILED = re.compile(r"^error: (?:patch failed: )?(\S+?)(?::\d+)?: (.+)$")


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
