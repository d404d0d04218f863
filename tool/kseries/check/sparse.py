"""New sparse diagnostics (make C=2), compared by identity, not by line or count.

Each C file a patch touches is run through sparse at the patch's parent and at
the patch: C=2 checks the named object's source whether or not make rebuilds
it, with the base's own CHECKFLAGS (its Makefile adds --arch, -m64 and the
endianness). No W=1 and no -Werror override, so the compiler command line is
the build check's and a warm object is not rebuilt. An identity is the file
(relative to the source tree), the severity and the message with numbers
normalised, with sparse's "expected/got" lines that follow it; a diagnostic is
new when its identity is not among the parent's, so what the base already has
is never reported. Sparse 0.6.4 exits 0 on its own diagnostics: a failed make
is a failed build.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from kseries.build import kbuild
from kseries.check import compare
from kseries.check.context import Context
from kseries.check.report import SKIP, Cell
from kseries.errors import KseriesError

NAME = "sparse"
_DIAG = re.compile(r"^(?P<file>[^:\s]+):\d+:\d+: (?P<sev>warning|error): (?P<msg>.*)$")
# "expected int *p" / "got int [noderef] __user *u", under the diagnostic they explain
_MORE = re.compile(r"^(?P<file>[^:\s]+):\d+:\d+:\s{2,}(?P<msg>\S.*)$")
_CHECK = re.compile(r"^\s+CHECK\s+(?P<file>\S+)$")  # kbuild's quiet line for $(CHECK)


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    severity: str  # "warning" or "error"
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.severity}: {self.message}"


def parse(output: str, root: str = "", source: str = "") -> set[Diagnostic]:
    """Sparse's diagnostics in make's output, as identities.

    With ``source`` (a path relative to ``root``), only what sparse said between
    the last ``CHECK`` of that file and the next ``CHECK``: not what the check
    of a prerequisite or of another object said.
    """
    lines = output.splitlines()
    if source:
        checks = [(i, compare.relative(m.group("file"), root)) for i, ln in enumerate(lines)
                  if (m := _CHECK.match(ln))]
        starts = [n for n, (_, f) in enumerate(checks) if f == source]
        if starts:
            n = starts[-1]
            end = checks[n + 1][0] if n + 1 < len(checks) else len(lines)
            lines = lines[checks[n][0]:end]
    found: list[tuple[str, str, str]] = []
    for line in lines:
        m = _DIAG.match(line)
        if m:
            msg = _numbers(m.group("msg"))
            found.append((compare.relative(m.group("file"), root), m.group("sev"), msg))
            continue
        m = _MORE.match(line)
        if m and found and found[-1][0] == compare.relative(m.group("file"), root):
            f, sev, msg = found[-1]
            found[-1] = (f, sev, f"{msg}; {_numbers(m.group('msg'))}")
    return {Diagnostic(*d) for d in found}


def _numbers(msg: str) -> str:
    return re.sub(r"\b\d+\b", "N", msg.strip())


def compile_c2(build: kbuild.Build, obj: str, log: str) -> set[Diagnostic]:
    res = kbuild.make(build, obj, log=log, extra=("C=2", "CHECK=sparse"), check=False)
    if not res.ok:
        raise KseriesError(f"make C=2 {obj} failed (it does not build)",
                           hint=f"log: {res.log}")
    # the whole log: a cold directory's prerequisites can push sparse out of the tail
    text = res.log.read_text(errors="replace") if res.log else res.stdout
    return parse(text, str(build.src), obj[:-2] + ".c")


def check(ctx: Context) -> Iterator[Cell]:
    if shutil.which("sparse") is None:
        yield Cell(NAME, 0, SKIP, "sparse is not installed: apt-get install sparse")
        return
    yield from compare.new_at_each_patch(ctx, NAME, "sparse", compile_c2)
