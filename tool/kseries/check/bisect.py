"""Per-patch builds (bisectability) in every profile of the build matrix.

Policy: the profiles of the matrix share one worktree of the base, each with a
warm build directory of its own. The worktree moves from patch to patch once,
and at each patch make rebuilds, in every profile's directory, what the move
changed, as kbuild's dependency files say.

What is built at a patch depends on the profile's ``per_patch``:
- "targets" (kvm-x86): the profile's directories (arch/x86/kvm/,
  arch/x86/kernel/cpu/) plus the object of every C file the patch touches
  elsewhere. A header that the whole kernel includes (asm/cpufeatures.h) is
  therefore checked in those directories, not across the whole kernel: a full
  build per patch is what the naive bisect does, and `bench/check` measures it.
- "series" (the knob profiles): the objects of every C file the series touches
  that exist at the patch. That is the code whose compilation a knob (KVM_SMM,
  KVM_XEN, lockdep, SEV, 32-bit) changes, and a header-only patch is compiled
  through the series' own users of it.
A patch that touches nothing kbuild compiles (documentation, selftests) passes
without a build. A profile that does not apply to the base (see build/matrix.py)
has one SKIP that says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import PurePosixPath

from kseries import proc
from kseries.base import workspace
from kseries.build import kbuild, matrix, profiles
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP, Cell
from kseries.errors import KseriesError

PROFILE = "kvm-x86"  # the primary profile: W=1, sparse, layout and the selftest build in it
CHECK = "build"
NOT_BUILT = ("Documentation/", "tools/", "LICENSES/", "samples/")


def column(profile: str) -> str:
    """The report column of the per-patch build in ``profile``."""
    return f"{CHECK}:{profile}"


def touched(ctx: Context, parent: str, commit: str) -> list[str]:
    repo = workspace.scratch_repo(ctx.base)
    res = workspace.git(repo, "diff", "--name-only", parent, commit)
    return [line for line in res.stdout.splitlines() if line]


def compiled(files: Iterable[str]) -> list[str]:
    """The files kbuild compiles or that steer it."""
    return [f for f in files if not f.startswith(NOT_BUILT)
            and (f.endswith((".c", ".h", ".S", ".sh")) or PurePosixPath(f).name in
                 ("Makefile", "Kbuild", "Kconfig"))]


def targets_for(profile: profiles.Profile, files: Iterable[str],
                series_objects: Iterable[str] = ()) -> list[str]:
    """What to build for a patch touching ``files``: [] when kbuild compiles none of them.

    ``series_objects``: the objects of the series' C files that exist at the patch
    (what a "series" profile builds).
    """
    built = compiled(files)
    if not built:
        return []
    if profile.per_patch == "series":
        return sorted(set(series_objects))
    extra = [f[:-2] + ".o" for f in built if f.endswith(".c")
             and not any(f.startswith(t) for t in profile.targets if t.endswith("/"))]
    return [*profile.targets, *extra]


def rows_in_order(ctx: Context) -> Iterator[tuple[int, str, str]]:
    """(row, parent commit, commit) of each applied patch."""
    parent = ctx.base.commit
    for row in sorted(ctx.applied):
        yield row, parent, ctx.applied[row]
        parent = ctx.applied[row]


def exists_at(ctx: Context, commit: str, path: str) -> bool:
    """``path`` is in the tree of ``commit`` (in the base's scratch repository)."""
    repo = workspace.scratch_repo(ctx.base)
    return workspace.git(repo, "cat-file", "-e", f"{commit}:{path}", check=False).ok


def chosen(ctx: Context) -> list[profiles.Profile]:
    return list(ctx.profiles) or [profiles.load_profile(ctx.templates, PROFILE)]


def check(ctx: Context) -> Iterator[Cell]:
    entries = matrix.for_base(ctx.base, ctx.base.commit, chosen(ctx))
    for e in entries:
        if not e.applies:
            yield Cell(column(e.profile.name), 0, SKIP, e.why_not)
    live = [e.profile for e in entries if e.applies]
    rows = list(rows_in_order(ctx))
    changed = {row: touched(ctx, parent, commit) for row, parent, commit in rows}
    series_c = sorted({f for files in changed.values() for f in files
                       if f.endswith(".c") and not f.startswith(NOT_BUILT)})
    builds: dict[str, kbuild.Build] = {}
    broken: dict[str, str] = {}  # profile -> why it cannot build at all (configure failed)
    with ExitStack() as stack:
        for profile in live:  # the matrix shares a worktree: mostly one lock, nested
            stack.enter_context(kbuild.locked(ctx.base, profile))
        for row, _, commit in rows:
            files = changed[row]
            objects = [f[:-2] + ".o" for f in series_c if exists_at(ctx, commit, f)]
            for profile in live:
                yield _one(ctx, profile, row, commit, files, objects, builds, broken)


def _one(ctx: Context, profile: profiles.Profile, row: int, commit: str, files: list[str],
         objects: list[str], builds: dict[str, kbuild.Build], broken: dict[str, str]) -> Cell:
    name = column(profile.name)
    targets = targets_for(profile, files, objects)
    if not targets:
        return Cell(name, row, PASS, "nothing kbuild compiles")
    if profile.name in broken:
        return Cell(name, row, FAIL, broken[profile.name])
    ctx.reporter.update(f"patch {row}: {profile.name}: make {' '.join(targets)}")
    t0 = time.monotonic()
    try:
        build = builds.get(profile.name)
        if build is None:
            build = builds[profile.name] = kbuild.open_build(ctx.base, profile, commit,
                                                             reporter=ctx.reporter)
        else:
            kbuild.move(build, commit)
        res = kbuild.make(build, *targets, log=f"patch-{row}", check=False)
    except KseriesError as exc:
        if profile.name not in builds:
            broken[profile.name] = f"{profile.name}: {exc}"
        return Cell(name, row, FAIL, f"{profile.name}: {exc}")
    if res.ok:
        took = time.monotonic() - t0  # the move and make, as this patch cost them
        return Cell(name, row, PASS, f"{profile.name}: {' '.join(targets)} in {took:.1f}s")
    lines = proc.key_lines(res.stdout)
    first = lines[0] if lines else ""
    return Cell(name, row, FAIL, f"does not build on its own with {profile.name}: {first}",
                details=(*lines, f"log: {res.log}"))
