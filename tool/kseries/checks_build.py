"""The build-side checks, from the kbuild modules: per-patch build, new W=1
warnings, VMCB layout and constants, selftest build.

Each module offers ``check(ctx: kseries.checks.Context) -> Iterable[Cell]``
and reads the applied commits from ``ctx.applied`` (row -> commit, in the
base's scratch repository) and the tip from ``ctx.tip``. Until a module is
there, its check reports SKIP saying so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

from kseries import checks
from kseries.checks import Context
from kseries.errors import KseriesError
from kseries.report import SKIP, WARN, Cell

VMCB_HEADER = "arch/x86/include/asm/svm.h"

# (check name, module under kseries, what it checks, needs every patch applied)
MODULES = (
    ("build", "bisect", "each patch builds on its own (kvm-x86 profile)", False),
    ("warnings", "warnings", "no new W=1 warnings, by identity", False),
    ("layout", "layout", "VMCB layout and constants from DWARF", True),
    ("selftest", "selftest_build", "kvm_buslock_test builds static, warning-free", True),
)


def _adapter(name: str, module: str, whole: bool) -> Callable[[Context], Iterable[Cell]]:
    def run(ctx: Context) -> Iterable[Cell]:
        if name == "layout" and not any(f.path == VMCB_HEADER for m in ctx.series.patches
                                        for f in m.files):
            yield Cell(name, 0, SKIP, f"the series does not touch the VMCB ({VMCB_HEADER})")
            return
        try:
            mod = importlib.import_module(f"kseries.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"kseries.{module}":
                raise KseriesError(f"kseries.{module} cannot be imported: {exc}") from exc
            yield Cell(name, 0, SKIP, f"kseries.{module} is not there yet (issue 3, build side)")
            return
        func = getattr(mod, "check", None)
        if func is None:
            yield Cell(name, 0, SKIP, f"kseries.{module} has no check(ctx)")
            return
        if not ctx.am_tried:
            list(checks.applies(ctx))  # the commits to build; its cells are the applies check's
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
        yield from func(ctx)

    run.__name__ = f"check_{name}"
    return run


CHECKS = tuple((name, _adapter(name, module, whole), summary)
               for name, module, summary, whole in MODULES)
