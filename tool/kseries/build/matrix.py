"""The build matrix: the profiles a series is built with at every patch, and
whether each applies to a base.

A series names its matrix (``matrix`` in series.toml); ``--profile`` narrows
it. A profile does not apply to a base that lacks a Kconfig symbol it
``requires`` (KVM_SMM before 6.2), or whose Kconfig entry named in
``unless_depends`` depends on the given symbol (KVM on X86_64 where the base
stopped building KVM for 32-bit). That is read off the base's Kconfig files at
the commit being built, before anything is configured.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.base import workspace
from kseries.base.bases import Base
from kseries.build import profiles
from kseries.build.profiles import Profile
from kseries.errors import KseriesError

_ENTRY_END = re.compile(r"^\s*(config|menuconfig|choice|endchoice|menu|endmenu|if|endif|"
                        r"source|comment|mainmenu)\b")


@dataclass(frozen=True)
class Entry:
    profile: Profile
    why_not: str = ""  # why the profile does not apply to the base ("" when it does)

    @property
    def applies(self) -> bool:
        return not self.why_not


def select(templates: Path, matrix: Sequence[str], wanted: Sequence[str] = ()) -> list[Profile]:
    """The matrix's profiles, narrowed to ``wanted`` (``--profile``) when given."""
    for name in wanted:
        if name not in matrix:
            raise KseriesError(f"--profile {name}: not in the series' build matrix",
                               hint=f"the matrix: {', '.join(matrix)}")
    names = [n for n in matrix if not wanted or n in wanted]
    return [profiles.load_profile(templates, n) for n in names]


def for_base(base: Base, commit: str, chosen: Sequence[Profile]) -> list[Entry]:
    """Each chosen profile, with why it does not apply to ``base`` at ``commit``."""
    symbols = sorted({s for p in chosen for s in (*p.requires, *(e for e, _ in p.unless_depends))})
    entries = kconfig_entries(base, commit, symbols)
    out = []
    for p in chosen:
        why = ""
        missing = [s for s in p.requires if s not in entries]
        if missing:
            why = f"the base has no CONFIG_{missing[0]} (the profile needs it)"
        for entry, dep in p.unless_depends:
            if any(re.search(rf"\b{re.escape(dep)}\b", d) for d in entries.get(entry, ())):
                why = f"the base's CONFIG_{entry} depends on {dep}"
        out.append(Entry(p, why))
    return out


def kconfig_entries(base: Base, commit: str, symbols: Sequence[str]) -> dict[str, list[str]]:
    """Symbol -> the ``depends on`` lines of its Kconfig entries, for the symbols defined."""
    if not symbols:
        return {}
    repo = workspace.scratch_repo(base)
    names = "|".join(re.escape(s) for s in symbols)
    pattern = rf"^\s*(menu)?config ({names})\s*$"
    res = workspace.git(repo, "grep", "-l", "-E", pattern, commit, "--",
                        "Kconfig*", "*/Kconfig*", check=False)
    found: dict[str, list[str]] = {}
    for hit in res.stdout.splitlines():
        _, _, path = hit.partition(":")
        text = workspace.git(repo, "show", f"{commit}:{path}").stdout
        current = ""
        for line in text.splitlines():
            m = re.match(rf"^\s*(?:menu)?config ({names})\s*$", line)
            if m:
                current = m.group(1)
                found.setdefault(current, [])
                continue
            if _ENTRY_END.match(line):
                current = ""
            elif current and line.strip().startswith("depends on"):
                found[current].append(line.strip()[len("depends on"):].strip())
    return found
