"""The VMCB layout and the series' constants, as the compiler sees them.

A small object that includes the kernel's own headers is compiled with the
tree's flags (a kbuild external module, built to an object only) and with
debug info; gdb then reads, from its DWARF and data, the offset of
bus_lock_counter, the size of struct vmcb_control_area, and the values of
INTERCEPT_BUSLOCK, SVM_EXIT_BUS_LOCK and the CPUID bit. The same object built
on the base gives the size the series must keep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from kseries import proc
from kseries.build import kbuild, profiles
from kseries.check import bisect
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, Cell
from kseries.errors import KseriesError
from kseries.render import csource
from kseries.render.probe import (
    CPUFEATURES,
    CPUID_BIT,
    CPUID_WORD,
    EXIT_CODE,
    INTERCEPT_BIT,
    INTERCEPT_WORD,
)

COUNTER_OFFSET = 0x120

BASE_SOURCE = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/types.h>
#include <asm/svm.h>

struct vmcb_control_area kseries_control;
"""

SERIES_SOURCE = BASE_SOURCE + """\
#include <asm/cpufeatures.h>

int kseries_intercept = INTERCEPT_BUSLOCK;
int kseries_exit_code = SVM_EXIT_BUS_LOCK;
int kseries_cpuid_bit = {feature};
"""


def cpuid_macro(cpufeatures_h: str) -> str:
    """The macro the series defines for the bit (each series names it its own way)."""
    for d in csource.defines(cpufeatures_h, "X86_"):
        if re.fullmatch(rf"\(\s*{CPUID_WORD}\s*\*\s*32\s*\+\s*{CPUID_BIT}\s*\)", d.value):
            return d.name
    raise KseriesError(f"{CPUFEATURES} at the tip defines no macro for word {CPUID_WORD}, "
                       f"bit {CPUID_BIT}")


@dataclass(frozen=True)
class Layout:
    size: int
    offsets: dict[str, int]
    values: dict[str, int]


def measure(build: kbuild.Build, source: str, name: str, symbols: tuple[str, ...]) -> Layout:
    mod = build.out / "kseries-layout" / name
    mod.mkdir(parents=True, exist_ok=True)
    (mod / "layout.c").write_text(source)
    (mod / "Makefile").write_text("obj-m := layout.o\nccflags-y := -g -O0\n")
    (mod / "layout.o").unlink(missing_ok=True)
    kbuild.make(build, "layout.o", log=f"layout-{name}", extra=(f"M={mod}",),
                what=f"layout object ({name})")
    obj = mod / "layout.o"
    args = ["gdb", "-nx", "-batch", "-ex", "ptype/o struct vmcb_control_area"]
    for sym in symbols:
        args += ["-ex", f"print {sym}"]
    res = proc.run([*args, str(obj)], what="gdb")
    return parse_gdb(res.stdout, symbols)


def parse_gdb(text: str, symbols: tuple[str, ...]) -> Layout:
    offsets = {}
    for m in re.finditer(r"/\*\s*(0x[0-9a-f]+|\d+)\s*(?::\s*\d+)?\s*\|\s*\S+\s*\*/\s*[\w ]+?\**"
                         r"(\w+)(?:\[\d+\])?;", text):
        offsets[m.group(2)] = int(m.group(1), 0)
    sizes = re.findall(r"total size \(bytes\):\s*(\d+)", text)
    if not sizes:
        raise KseriesError("gdb printed no size for struct vmcb_control_area")
    values = [int(v) for v in re.findall(r"^\$\d+ = (-?\d+)$", text, re.M)]
    return Layout(int(sizes[-1]), offsets, dict(zip(symbols, values, strict=False)))


def check(ctx: Context) -> Iterator[Cell]:
    profile = profiles.load_profile(ctx.templates, bisect.PROFILE)
    symbols = ("kseries_intercept", "kseries_exit_code", "kseries_cpuid_bit")
    try:
        ctx.reporter.update("layout: compiling on the base and at the tip")
        build = kbuild.open_build(ctx.base, profile, ctx.base.commit, reporter=ctx.reporter)
        before = measure(build, BASE_SOURCE, "base", ())
        kbuild.move(build, ctx.tip)
        feature = cpuid_macro((build.src / CPUFEATURES).read_text())
        after = measure(build, SERIES_SOURCE.format(feature=feature), "tip", symbols)
    except KseriesError as exc:
        yield Cell("layout", 0, FAIL, str(exc))
        return
    yield from verdicts(before, after)


def verdicts(before: Layout, after: Layout) -> Iterator[Cell]:
    problems = []
    off = after.offsets.get("bus_lock_counter")
    if off != COUNTER_OFFSET:
        problems.append(f"bus_lock_counter at {off:#x}" if off is not None
                        else "no bus_lock_counter in vmcb_control_area")
    if after.size != before.size:
        problems.append(f"vmcb_control_area is {after.size:#x} bytes, the base's {before.size:#x}")
    moved = [f for f, o in before.offsets.items() if after.offsets.get(f, o) != o]
    if moved:
        problems.append(f"fields moved: {', '.join(moved)}")
    want = {"kseries_intercept": INTERCEPT_WORD * 32 + INTERCEPT_BIT,
            "kseries_exit_code": EXIT_CODE, "kseries_cpuid_bit": CPUID_WORD * 32 + CPUID_BIT}
    names = {"kseries_intercept": "INTERCEPT_BUSLOCK", "kseries_exit_code": "SVM_EXIT_BUS_LOCK",
             "kseries_cpuid_bit": "the CPUID bit"}
    for sym, value in want.items():
        if after.values.get(sym) != value:
            problems.append(f"{names[sym]} is {after.values.get(sym)}, not {value}")
    detail = (f"bus_lock_counter at {COUNTER_OFFSET:#x}, size {after.size:#x} as on the base, "
              f"INTERCEPT_BUSLOCK {want['kseries_intercept']}, SVM_EXIT_BUS_LOCK "
              f"{EXIT_CODE:#x}, CPUID bit 15*32+29")
    if problems:
        yield Cell("layout", 0, FAIL, "; ".join(problems), details=tuple(problems))
    else:
        yield Cell("layout", 0, PASS, detail)
