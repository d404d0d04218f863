"""What `kseries build` produced, recorded so that `run` and `pipeline` find it.

The unpatched base and the series build in the same worktree and build
directory: `pipeline` builds the base first, then moves the worktree to the
series' tip, and make rebuilds what the series changed (with ccache hits for
the objects whose preprocessed source it did not change). Each build's kernel
and selftests are copied out beside its record.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.base.bases import Base
from kseries.base.cache import cache_root, write_atomic
from kseries.build import kbuild, profiles
from kseries.errors import KseriesError
from kseries.progress import NullReporter, Reporter
from kseries.render import series as rendering
from kseries.render.probe import TEST_NAME, probe


@dataclass(frozen=True)
class Artifacts:
    profile: str
    commit: str  # what was built: the series tip, or the base commit when unpatched
    patched: bool
    kernel: Path | None  # bzImage, for profiles that make one
    selftests: dict[str, Path]
    build_dir: Path
    make_seconds: float = 0.0  # the kernel's make, as this build paid it (cold or incremental)

    def to_json(self) -> dict[str, object]:
        return {"profile": self.profile, "commit": self.commit, "patched": self.patched,
                "kernel": str(self.kernel) if self.kernel else None,
                "selftests": {k: str(v) for k, v in self.selftests.items()},
                "build_dir": str(self.build_dir), "make_seconds": round(self.make_seconds, 1)}


KERNEL = "bzImage"


def keep(b: kbuild.Build, selftests: dict[str, Path], record: Path) -> dict[str, Path]:
    """Copy what was built out of the build directory, beside its record.

    One build directory builds the base and then the series (the worktree moves
    and make rebuilds only what the series changed), so what each produced is
    kept where the next build does not overwrite it.
    """
    dest = record.with_name(record.name.removesuffix(".artifacts.json") + ".kept")
    dest.mkdir(parents=True, exist_ok=True)
    wanted = dict(selftests)
    kernel = b.out / "arch/x86/boot/bzImage"
    if kernel.exists():
        wanted[KERNEL] = kernel
    return copy_into(dest, wanted)


def copy_into(dest: Path, files: Mapping[str, Path]) -> dict[str, Path]:
    """Copy ``files`` (name -> path) into ``dest``, each under its file name and whole
    or not at all: name -> the copy."""
    kept = {}
    for name, path in files.items():
        target = dest / path.name
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        os.replace(tmp, target)
        kept[name] = target
    return kept


def record_path(base: Base, profile: str, patched: bool, series: str) -> Path:
    """The record of a build: per series for the patched kernel, one for the base's own."""
    name = f"{profile}.{series}" if patched else f"{profile}-base"
    return cache_root() / "build" / base.key / f"{name}.artifacts.json"


def save(base: Base, a: Artifacts, series: str) -> Path:
    path = record_path(base, a.profile, a.patched, series)
    write_atomic(path, json.dumps(a.to_json(), indent=2) + "\n")
    return path


def load(base: Base, profile: str, series: str, patched: bool = True) -> Artifacts:
    path = record_path(base, profile, patched, series)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        what = f"the {series} series" if patched else "the unpatched base"
        flag = f" --series {series}" if patched else " --unpatched"
        raise KseriesError(
            f"no {profile} build of {what} for {base.label}",
            hint=f"run: kseries build --base {base.label} --profile {profile}{flag}",
        ) from exc
    return Artifacts(d["profile"], d["commit"], d["patched"],
                     Path(d["kernel"]) if d["kernel"] else None,
                     {k: Path(v) for k, v in d["selftests"].items()}, Path(d["build_dir"]),
                     float(d.get("make_seconds", 0.0)))


def of_tip(base: Base, profile: str, tip: str) -> Artifacts | None:
    """The patched build of ``tip``, whichever series it is the tip of (None: none here)."""
    for path in sorted((cache_root() / "build" / base.key).glob(f"{profile}.*.artifacts.json")):
        series = path.name[len(profile) + 1:-len(".artifacts.json")]
        try:
            built = load(base, profile, series)
        except KseriesError:
            continue
        if built.commit == tip:
            return built
    return None


def design_checks(kselftest: Path) -> dict[str, Path]:
    """kseries' design checks (kselftest/design/*.c): built with the selftests, never
    part of a series."""
    return {p.stem: p for p in sorted((kselftest / "design").glob("*.c"))}


def build(base: Base, templates: Path, series_dir: Path, kselftest: Path, profile_name: str, *,
          smoke: Sequence[str], patched: bool = True, out_dir: Path | None = None,
          reporter: Reporter | None = None) -> Artifacts:
    """Build a profile's targets and the selftests: for the series in ``series_dir`` at its
    tip, or the base.

    The selftests are ``smoke`` (the host inventory's smoke tests, which the
    caller reads), plus kvm_buslock_test when patched, plus kseries' design
    checks (``design_checks``).
    """
    reporter = reporter or NullReporter()
    series_id = series_dir.resolve().name
    profile = profiles.load_profile(templates, profile_name)
    if patched:
        series = rendering.render(base, series_dir, kselftest,
                                  out_dir or cache_root() / "series" / base.key / series_id,
                                  reporter)
        commit, facts = series.tip, series.facts.selftest
    else:
        commit, facts = base.commit, probe(rendering.base_reader(base)).selftest
    test_dir = facts.dir
    extra = kbuild.ExtraPrograms(design_checks(kselftest), facts.makefile, facts.var)
    names = tuple(dict.fromkeys((*smoke, *([TEST_NAME] if patched else []))))
    what = f"at {commit[:12]}" if patched else "(unpatched)"
    reporter.start("build", f"{profile.name} for {base.describe} {what}")
    with kbuild.locked(base, profile):
        b = kbuild.open_build(base, profile, commit, reporter=reporter)
        kbuild.move(b, commit)
        reporter.update(f"{kbuild.steps(profile.targets)} (log: {b.logs})")
        t0 = time.monotonic()
        kbuild.make_targets(b, *profile.targets, log="build")
        took = time.monotonic() - t0
        reporter.update(f"selftests: {', '.join(names)}")
        tests = kbuild.build_selftests(b, test_dir, names, extra)
        kept = keep(b, tests.binaries, record_path(base, profile.name, patched, series_id))
        result = Artifacts(profile.name, commit, patched, kept.get(KERNEL),
                           {n: kept[n] for n in tests.binaries}, b.out, took)
        save(base, result, series_id)
    reporter.finish("DONE", f"{len(tests.binaries)} selftests"
                    + (f", {len(tests.warnings)} warnings" if tests.warnings else ""))
    return result
