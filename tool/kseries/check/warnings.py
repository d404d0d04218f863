"""New compiler warnings with W=1, compared by identity, not by line or count.

Each C file a patch touches is compiled with W=1 at the patch's parent and at
the patch. A warning's identity is its file, the function gcc names it in, its
message with numbers and quoted line fragments normalised, and its -W flag; a
warning is new when its identity is not among the parent's. The per-patch loop
is check/compare.py's, which the sparse check shares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from kseries.build import kbuild
from kseries.check import compare
from kseries.check.context import Context
from kseries.check.report import Cell
from kseries.errors import KseriesError

_WARN = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+):(?:\d+:)? warning: (?P<msg>.*?)"
                   r"(?: \[(?P<flag>-W[^\]]+)\])?$")
_FUNC = re.compile(r"^(?P<file>[^:\s]+): In function '(?P<func>[^']+)':$")  # LC_ALL=C


@dataclass(frozen=True, order=True)
class Warning_:
    file: str
    function: str
    message: str
    flag: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.function}()" if self.function else self.file
        return f"{where}: {self.message} [{self.flag}]"


def parse(output: str, root: str = "") -> set[Warning_]:
    """The warnings in gcc's output, as identities."""
    found = set()
    func: dict[str, str] = {}
    for line in output.splitlines():
        m = _FUNC.match(line)
        if m:
            func[compare.relative(m.group("file"), root)] = m.group("func")
            continue
        m = _WARN.match(line)
        if m:
            f = compare.relative(m.group("file"), root)
            msg = re.sub(r"\b\d+\b", "N", m.group("msg"))
            found.add(Warning_(f, func.get(f, ""), msg, m.group("flag") or ""))
    return found


# W=1 warnings are reported, not fatal: -Werror (KVM_WERROR, WERROR) is off here.
NO_WERROR = ("CONFIG_KVM_WERROR=", "CONFIG_WERROR=")


def compile_w1(build: kbuild.Build, obj: str, log: str) -> set[Warning_]:
    res = kbuild.make(build, obj, log=log, w1=True, extra=NO_WERROR, check=False)
    if not res.ok:
        raise KseriesError(f"W=1 build of {obj} failed", hint=f"log: {res.log}")
    return parse(res.stdout, str(build.src))


def check(ctx: Context) -> Iterator[Cell]:
    return compare.new_at_each_patch(ctx, "warnings", "W=1", compile_w1)
