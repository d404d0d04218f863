"""New compiler warnings with W=1, compared by identity, not by line or count.

Each C file a patch touches is compiled with W=1 at the patch's parent and at
the patch. A warning's identity is its file, the function gcc names it in, its
message with numbers and quoted line fragments normalised, and its -W flag; a
warning is new when its identity is not among the parent's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from kseries.base import workspace
from kseries.build import kbuild, profiles
from kseries.check import bisect
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, Cell
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
            func[_rel(m.group("file"), root)] = m.group("func")
            continue
        m = _WARN.match(line)
        if m:
            f = _rel(m.group("file"), root)
            msg = re.sub(r"\b\d+\b", "N", m.group("msg"))
            found.add(Warning_(f, func.get(f, ""), msg, m.group("flag") or ""))
    return found


def _rel(path: str, root: str) -> str:
    path = path.removeprefix("./")
    if root and path.startswith(root.rstrip("/") + "/"):
        path = path[len(root.rstrip("/")) + 1:]
    return path


# W=1 warnings are reported, not fatal: -Werror (KVM_WERROR, WERROR) is off here.
NO_WERROR = ("CONFIG_KVM_WERROR=", "CONFIG_WERROR=")


def compile_w1(build: kbuild.Build, obj: str, log: str) -> set[Warning_]:
    res = kbuild.make(build, obj, log=log, w1=True, extra=NO_WERROR, check=False)
    if not res.ok:
        raise KseriesError(f"W=1 build of {obj} failed", hint=f"log: {res.log}")
    return parse(res.stdout, str(build.src))


def check(ctx: Context) -> Iterator[Cell]:
    profile = profiles.load_profile(ctx.templates, bisect.PROFILE)
    build: kbuild.Build | None = None
    for row, parent, commit in bisect.rows_in_order(ctx):
        sources = [f for f in bisect.touched(ctx, parent, commit)
                   if f.endswith(".c") and not f.startswith(bisect.NOT_BUILT)]
        if not sources:
            yield Cell("warnings", row, PASS, "no C file touched")
            continue
        new: list[Warning_] = []
        try:
            if build is None:
                build = kbuild.open_build(ctx.base, profile, parent, reporter=ctx.reporter)
            for src in sources:
                obj = src[:-2] + ".o"
                ctx.reporter.update(f"patch {row}: W=1 {obj} before and after")
                kbuild.move(build, parent)
                before = set() if _is_new(ctx, parent, src) else compile_w1(build, obj, "w1-before")
                kbuild.move(build, commit)
                after = compile_w1(build, obj, f"w1-patch-{row}")
                new.extend(sorted(after - before))
        except KseriesError as exc:
            yield Cell("warnings", row, FAIL, str(exc))
            continue
        if new:
            yield Cell("warnings", row, FAIL, f"{len(new)} new W=1 warning(s): {new[0]}",
                       details=tuple(str(w) for w in new))
        else:
            yield Cell("warnings", row, PASS, f"W=1: none new in {', '.join(sources)}")


def _is_new(ctx: Context, parent: str, path: str) -> bool:
    repo = workspace.scratch_repo(ctx.base)
    return not workspace.git(repo, "cat-file", "-e", f"{parent}:{path}", check=False).ok
