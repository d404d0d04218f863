"""Per-patch builds (bisectability) with the kvm-x86 profile.

Policy: one warm build directory per base; the worktree moves from patch to
patch and make rebuilds what each move changed, as kbuild's dependency files
say. What is built at each patch is the profile's directories (arch/x86/kvm/,
arch/x86/kernel/cpu/) plus the object of every C file the patch touches
elsewhere. A header that the whole kernel includes (asm/cpufeatures.h) is
therefore checked in those directories, not across the whole kernel: a full
build per patch is what the naive bisect does, and `bench/check` measures it.
A patch that touches nothing kbuild compiles (documentation, selftests) passes
without a build.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from kseries import proc
from kseries.base import workspace
from kseries.build import kbuild, profiles
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, Cell
from kseries.errors import KseriesError

PROFILE = "kvm-x86"
NOT_BUILT = ("Documentation/", "tools/", "LICENSES/", "samples/")


def touched(ctx: Context, parent: str, commit: str) -> list[str]:
    repo = workspace.scratch_repo(ctx.base)
    res = workspace.git(repo, "diff", "--name-only", parent, commit)
    return [line for line in res.stdout.splitlines() if line]


def targets_for(profile: profiles.Profile, files: Iterable[str]) -> list[str]:
    """What to build for a patch touching ``files``: [] when kbuild compiles none of them."""
    compiled = [f for f in files if not f.startswith(NOT_BUILT)
                and (f.endswith((".c", ".h", ".S", ".sh")) or PurePosixPath(f).name in
                     ("Makefile", "Kbuild", "Kconfig"))]
    if not compiled:
        return []
    extra = [f[:-2] + ".o" for f in compiled if f.endswith(".c")
             and not any(f.startswith(t) for t in profile.targets if t.endswith("/"))]
    return [*profile.targets, *extra]


def rows_in_order(ctx: Context) -> Iterator[tuple[int, str, str]]:
    """(row, parent commit, commit) of each applied patch."""
    parent = ctx.base.commit
    for row in sorted(ctx.applied):
        yield row, parent, ctx.applied[row]
        parent = ctx.applied[row]


def check(ctx: Context) -> Iterator[Cell]:
    profile = profiles.load_profile(ctx.templates, PROFILE)
    build: kbuild.Build | None = None
    for row, parent, commit in rows_in_order(ctx):
        targets = targets_for(profile, touched(ctx, parent, commit))
        if not targets:
            yield Cell("build", row, PASS, "nothing kbuild compiles")
            continue
        ctx.reporter.update(f"patch {row}: make {' '.join(targets)}")
        t0 = time.monotonic()
        try:
            if build is None:
                build = kbuild.open_build(ctx.base, profile, commit, reporter=ctx.reporter)
            else:
                kbuild.move(build, commit)
            res = kbuild.make(build, *targets, log=f"patch-{row}", check=False)
        except KseriesError as exc:
            yield Cell("build", row, FAIL, str(exc))
            continue
        if res.ok:
            took = time.monotonic() - t0  # the move and make, as this patch cost them
            yield Cell("build", row, PASS, f"{PROFILE}: {' '.join(targets)} in {took:.1f}s")
        else:
            lines = proc.key_lines(res.stdout)
            first = lines[0] if lines else ""
            yield Cell("build", row, FAIL, f"does not build on its own: {first}",
                       details=(*lines, f"log: {res.log}"))
