"""Every x86 KVM selftest the base builds, as static binaries for a suite run.

`kseries build` builds the smoke tests and the series' own test. A suite (the
run stage's --suite) needs them all: they are built here from the series'
tip (in the worktree and build directory of the series' own vm build, under
its lock, with kbuild's selftest build), copied out beside its record, and
reused while the tip is the same. The same binaries run on both kernels, so
that the kernel is the only difference between the two runs. Building all of
them (static) takes about 15 s on two cores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from kseries.base.bases import Base
from kseries.base.cache import cache_root, write_atomic
from kseries.build import artifacts, kbuild, profiles
from kseries.errors import KseriesError
from kseries.render import series as rendering
from kseries.render.probe import probe

PROFILE = "vm"


def built_by_base(base: Base) -> list[str]:
    """The x86 KVM selftests the base's makefile lists, in its order."""
    reader = rendering.base_reader(base)
    facts = probe(reader).selftest
    text = reader.read(facts.makefile) or ""
    names = tests_in_makefile(text, facts.var)
    if not names:
        raise KseriesError(f"{facts.makefile}: no tests in {facts.var}",
                           hint="this base lists its KVM selftests differently")
    return names


def record_path(base: Base, series: str) -> Path:
    return cache_root() / "build" / base.key / f"{PROFILE}.{series}.suite.json"


def binaries(base: Base, templates: Path, series: str, names: Sequence[str]) -> dict[str, Path]:
    """``names`` built static from the tip of ``series``' vm build: name -> binary."""
    built = artifacts.load(base, PROFILE, series, patched=True)
    record = record_path(base, series)
    have = _cached(record, built.commit)
    if all(n in have for n in names):
        return {n: have[n] for n in names}
    profile = profiles.load_profile(templates, PROFILE)
    test_dir = probe(rendering.base_reader(base)).selftest.dir
    with kbuild.locked(base, profile):
        b = kbuild.open_build(base, profile, built.commit)
        kbuild.move(b, built.commit)
        made = _make(b, test_dir, names)
        dest = record.with_name(record.name.removesuffix(".json") + ".kept")
        dest.mkdir(parents=True, exist_ok=True)
        kept = {**have, **artifacts.copy_into(dest, made)}
        write_atomic(record, json.dumps({"commit": built.commit, "selftests": {
            k: str(v) for k, v in kept.items()}}, indent=2) + "\n")
    missing = [n for n in names if n not in kept]
    if missing:
        raise KseriesError(f"selftests {', '.join(missing)} did not build at "
                           f"{built.commit[:12]}", hint=f"see {b.logs / 'suite-selftests.log'}")
    return {n: kept[n] for n in names}


def _cached(record: Path, commit: str) -> dict[str, Path]:
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("commit") != commit:
        return {}
    found = {k: Path(v) for k, v in data.get("selftests", {}).items()}
    return {k: v for k, v in found.items() if v.is_file()}


def _make(b: kbuild.Build, test_dir: str, names: Sequence[str]) -> dict[str, Path]:
    """Build ``names`` with make -k: what built, even if some did not (the caller says)."""
    return kbuild.build_selftests(b, test_dir, tuple(names), keep_going=True,
                                  output="kseries-suite", log_name="suite-selftests").binaries


_ASSIGN = re.compile(r"^([A-Za-z0-9_]+)\s*(\+?=|:=)\s*(.*?)\s*$")
_REF = re.compile(r"^\$[({]([A-Za-z0-9_]+)[)}]$")


def tests_in_makefile(text: str, var: str) -> list[str]:
    """The tests a selftest makefile lists in ``var`` (e.g. TEST_GEN_PROGS_x86_64), by
    base name, in order; references such as $(TEST_GEN_PROGS_COMMON) are expanded."""
    values: dict[str, list[str]] = {}
    for raw in text.replace("\\\n", " ").splitlines():
        m = _ASSIGN.match(raw)
        if not m:
            continue
        name, op, words = m.groups()
        if op != "+=":
            values[name] = []
        values.setdefault(name, []).extend(words.split("#", 1)[0].split())

    def expand(name: str, seen: frozenset[str]) -> list[str]:
        out: list[str] = []
        for word in values.get(name, []):
            ref = _REF.match(word)
            if ref and ref.group(1) not in seen:
                out += expand(ref.group(1), seen | {ref.group(1)})
            elif "$" not in word:
                out.append(word.rsplit("/", 1)[-1])
        return out

    return list(dict.fromkeys(expand(var, frozenset({var}))))
