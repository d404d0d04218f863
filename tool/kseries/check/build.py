"""The build-side checks: per-patch builds in the build matrix, new W=1 and
sparse warnings, VMCB layout and constants, the selftest build, new Sphinx
warnings in the docs a patch touches.

Each of check/bisect.py, check/warnings.py, check/sparse.py, check/layout.py,
check/selftest.py and check/docs.py offers ``check(ctx: Context) -> Iterable[Cell]``; it builds
through kseries.build (which knows nothing of checks), reading the applied
commits from ``ctx.applied`` (row -> commit, in the base's scratch repository)
and the tip from ``ctx.tip``. The adapters here make sure those are there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kseries.build import kbuild, profiles
from kseries.check import applies, bisect, docs, layout, selftest, sparse, warnings
from kseries.check.context import Context
from kseries.check.report import SKIP, WARN, Cell

VMCB_HEADER = "arch/x86/include/asm/svm.h"

BuildCheck = Callable[[Context], Iterable[Cell]]
# Why a check is not for this series ("" when it is), decided before anything is built.
NotFor = Callable[[Context], str]


def for_every_series(ctx: Context) -> str:
    return ""


def not_touching_the_vmcb(ctx: Context) -> str:
    if any(f.path == VMCB_HEADER for m in ctx.series.patches for f in m.files):
        return ""
    return f"the series does not touch the VMCB ({VMCB_HEADER})"


def not_touching_rst(ctx: Context) -> str:
    if any(f.path.endswith(".rst") for m in ctx.series.patches for f in m.files):
        return ""
    return "the series touches no .rst file"


# (check name, its check function, what it checks, needs every patch applied, not for)
MODULES: tuple[tuple[str, BuildCheck, str, bool, NotFor], ...] = (
    ("build", bisect.check, "each patch builds on its own, in each profile of the matrix", False,
     for_every_series),
    ("warnings", warnings.check, "no new W=1 warnings, by identity", False, for_every_series),
    ("sparse", sparse.check, "no new sparse warnings (make C=2), by identity", False,
     for_every_series),
    ("layout", layout.check, "VMCB layout and constants from DWARF", True,
     not_touching_the_vmcb),
    ("selftest", selftest.check, "kvm_buslock_test builds static, warning-free", True,
     for_every_series),
    ("htmldocs", docs.check, "no new Sphinx warnings in touched docs, by identity", False,
     not_touching_rst),
)


def _adapter(name: str, func: BuildCheck, whole: bool, not_for: NotFor) -> BuildCheck:
    def run(ctx: Context) -> Iterable[Cell]:
        why_not = not_for(ctx)
        if why_not:
            yield Cell(name, 0, SKIP, why_not)
            return
        if not ctx.am_tried:
            list(applies.applies(ctx))  # the commits to build; its cells are the applies check's
        if whole and not ctx.tip:
            yield Cell(name, 0, SKIP, "the series does not apply: no tip to build "
                       "(see the applies check)")
            return
        if not ctx.applied:
            yield Cell(name, 0, SKIP, "no patch applies: nothing to build")
            return
        if not whole and not ctx.tip:
            yield Cell(name, 0, WARN, f"only patches 1-{max(ctx.applied)} apply: "
                       "the others are not built")
        primary = profiles.load_profile(ctx.templates, bisect.PROFILE)
        with kbuild.locked(ctx.base, primary):  # not shared with a `kseries build`
            yield from func(ctx)

    run.__name__ = f"check_{name}"
    return run


CHECKS = tuple((name, _adapter(name, func, whole, not_for), summary)
               for name, func, summary, whole, not_for in MODULES)
