"""New diagnostics at each patch: the loop the W=1 and sparse checks share.

For each applied patch, every C file it touches (that kbuild compiles) is
compiled at the patch's parent and at the patch in the kvm-x86 profile's warm
build directory; a diagnostic is new when its identity is not among the
parent's. A file the patch adds has nothing before it. What an identity is,
and how a file is compiled for it, is the caller's (``Compile``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kseries.build import kbuild, profiles
from kseries.check import bisect
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, Cell
from kseries.errors import KseriesError


class Identity(Hashable, Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=Identity)
# Compile one object (e.g. "arch/x86/kvm/svm/svm.o") into logs/<log>.log; its diagnostics.
Compile = Callable[[kbuild.Build, str, str], set[T]]


def c_sources(ctx: Context, parent: str, commit: str) -> list[str]:
    """The C files the patch touches that kbuild compiles."""
    return [f for f in bisect.touched(ctx, parent, commit)
            if f.endswith(".c") and not f.startswith(bisect.NOT_BUILT)]


def relative(path: str, root: str) -> str:
    """``path`` as a diagnostic names it, relative to the source tree ``root``."""
    path = path.removeprefix("./")
    if root and path.startswith(root.rstrip("/") + "/"):
        path = path[len(root.rstrip("/")) + 1:]
    return path


def new_at_each_patch(ctx: Context, name: str, what: str, compile: Compile[T]) -> Iterator[Cell]:
    """One ``name`` cell per applied patch: PASS when no ``what`` diagnostic is new at it."""
    profile = profiles.load_profile(ctx.templates, bisect.PROFILE)
    build: kbuild.Build | None = None
    for row, parent, commit in bisect.rows_in_order(ctx):
        sources = c_sources(ctx, parent, commit)
        if not sources:
            yield Cell(name, row, PASS, "no C file touched")
            continue
        new: list[T] = []
        logs: list[Path] = []
        t0 = time.monotonic()
        try:
            if build is None:
                build = kbuild.open_build(ctx.base, profile, parent, reporter=ctx.reporter)
            for src in sources:
                obj = src[:-2] + ".o"
                stem = obj.replace("/", "_")
                ctx.reporter.update(f"patch {row}: {what} {obj} before and after")
                kbuild.move(build, parent)
                before = (set() if not bisect.exists_at(ctx, parent, src)
                          else compile(build, obj, f"{name}-before-{stem}"))
                kbuild.move(build, commit)
                log = f"{name}-patch-{row}-{stem}"
                found = sorted(compile(build, obj, log) - before)
                if found:
                    new.extend(found)
                    logs.append(build.logs / f"{log}.log")
        except KseriesError as exc:
            yield Cell(name, row, FAIL, str(exc))
            continue
        took = time.monotonic() - t0  # both compiles of every file, as this patch cost them
        if new:
            yield Cell(name, row, FAIL, f"{len(new)} new {what} warning(s): {new[0]}",
                       details=(*(str(w) for w in new), *(f"log: {p}" for p in logs)))
        else:
            yield Cell(name, row, PASS, f"{what}: none new in {', '.join(sources)} "
                       f"in {took:.1f}s")

