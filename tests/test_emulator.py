"""The emulated host: kseries' QEMU with the Bus Lock Threshold model, booting real kernels.

Slow: the first test builds the emulator (Debian's QEMU source, ~10 minutes
cold on 2 cores, then cached) and the vm kernels of the series it runs. Each
run is a real TCG boot of the kernel on the model: the series' handler, its
counter reload and its nested path run, and the model counts what it did.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest_harness import KSELFTEST, ROOT, artifacts_or_build
from kseries.base import bases
from kseries.build import artifacts, emulator
from kseries.errors import KseriesError
from kseries.progress import RecordingReporter
from kseries.run import harness, inventory, model, qemu, suite, suiterun
from kseries.run.inventory import CHECK_MODEL, TestPlan
from kseries.run.ktap import Status
from kseries.run.results import RunReport
from kseries.run.suite import Verdict

pytestmark = pytest.mark.slow

TEMPLATES = ROOT / "templates"
SMOKE = ("svm_vmcall_test",)
DESIGN = "kseries_design_rip_skip"
NESTED = "kseries_design_nested_counter"
PLAN = TestPlan(smoke=SMOKE, feature="kvm_buslock_test", test_timeout=120,
                design=(DESIGN, NESTED))
BLT = next(h for h in inventory.load(KSELFTEST / "hosts.toml").hosts if h.emulated_feature)


@pytest.fixture(scope="module")
def emu() -> emulator.Emulator:
    if shutil.which("dpkg-source") is None or shutil.which("ninja") is None:
        pytest.skip("the emulator's build needs dpkg-dev and ninja-build: make deps installs them")
    return emulator.ensure(emulator.load_spec(KSELFTEST))


def base() -> bases.Base:
    return bases.resolve("debian:6.12", TEMPLATES)


def built(series_dir: Path, *, patched: bool = True) -> artifacts.Artifacts:
    """The vm build of ``series_dir`` (or the base): the recorded one if it is current."""
    b = base()
    smoke = inventory.load(KSELFTEST / "hosts.toml").plan.smoke
    try:
        a = artifacts.load(b, "vm", series_dir.name, patched=patched)
        tests_there = {DESIGN, NESTED} <= set(a.selftests) or not patched  # the base: its kernel
        if tests_there and a.kernel and a.kernel.is_file():
            return a
    except KseriesError:
        pass
    return artifacts.build(b, TEMPLATES, series_dir, KSELFTEST, "vm", smoke=smoke,
                           patched=patched)


def run_on_blt(tmp: Path, art: artifacts.Artifacts, series_dir: Path, *,
               patched: bool = True) -> RunReport:
    tests = {n: art.selftests[n] for n in PLAN.names() if n in art.selftests}
    assert art.kernel is not None
    return harness.run_hosts([BLT], PLAN, kernel=art.kernel, tests=tests, out_dir=tmp / "res",
                             kselftest=KSELFTEST, reporter=RecordingReporter(), patched=patched,
                             traits=inventory.series_traits(series_dir / "series.toml"))


def outcome(report: RunReport, name: str) -> tuple[Status, bool, str]:
    t = next(t for t in report.hosts[0].tests if t.name == name)
    return t.actual, t.ok, t.reason


@pytest.mark.parametrize("series", ["v2", "merged"])
def test_the_series_passes_with_the_models_counts(series: str, emu: emulator.Emulator,
                                                  tmp_path: Path) -> None:
    series_dir = TEMPLATES / "series" / series
    artifacts_or_build()  # the base's and v2's vm builds, which others share
    art = built(series_dir)
    report = run_on_blt(tmp_path, art, series_dir)
    host = report.hosts[0]
    assert not host.infra_error, host.infra_error
    status, ok, reason = outcome(report, PLAN.feature)
    assert (status, ok) == (Status.PASS, True), reason
    t = next(t for t in host.tests if t.name == PLAN.feature)
    levels = [ln for ln in t.output if "bus lock exits" in ln]
    assert any("L1: 100 bus lock exits" in ln for ln in levels), t.output
    assert any("L2: 100 bus lock exits" in ln for ln in levels), t.output
    # The model's own counts equal what the tests saw: 200 from kvm_buslock_test, and
    # each design check's (2 exits and 1 let through on merged; 1 and 1 on v2).
    status, ok, reason = outcome(report, CHECK_MODEL)
    assert (status, ok) == (Status.PASS, True), reason
    design_exits = 4 if series == "merged" else 2
    assert host.model == {"exits": 200 + design_exits, "let_through": 202}, host.model
    # The design checks: merged holds; v2's unconditional reload and its copy of the
    # counter into vmcb02 are its known differences.
    for name, says in ((DESIGN, "the second ran without an exit"),
                       (NESTED, "let L2's bus lock run without an exit")):
        status, ok, reason = outcome(report, name)
        assert ok, reason
        assert status == (Status.PASS if series == "merged" else Status.FAIL)
        if series == "v2":
            assert says in reason
    assert report.exit_code == 0
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    h = summary["hosts"][0]
    assert h["evidence"] == "emulated" and h["model"]["exits"] == 200 + design_exits
    assert h["emulator"]["qemu"] == emu.version and "15.14.5" in h["emulator"]["model"]


def test_the_unpatched_base_skips(emu: emulator.Emulator, tmp_path: Path) -> None:
    v2 = TEMPLATES / "series" / "v2"
    artifacts_or_build()
    art = built(v2)
    base_art = built(v2, patched=False)
    tests = {n: art.selftests[n] for n in PLAN.names()}
    assert base_art.kernel is not None
    report = harness.run_hosts([BLT], PLAN, kernel=base_art.kernel, tests=tests,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=False)
    assert outcome(report, PLAN.feature)[:2] == (Status.SKIP, True)
    assert outcome(report, DESIGN)[:2] == (Status.SKIP, True)
    assert outcome(report, NESTED)[:2] == (Status.SKIP, True)
    assert report.hosts[0].model == {"exits": 0, "let_through": 0}
    assert report.exit_code == 0


def test_a_suite_runs_on_the_emulated_host(emu: emulator.Emulator, tmp_path: Path) -> None:
    """`kseries run --suite` boots the emulated host on kseries' QEMU (both kernels), as a
    TCG AMD host: the series' gate asks for no regression in the svm suite there."""
    v2 = TEMPLATES / "series" / "v2"
    artifacts_or_build()
    art, base_art = built(v2), built(v2, patched=False)
    assert art.kernel is not None and base_art.kernel is not None
    names = ["svm_vmcall_test", "svm_int_ctl_test"]
    inv = inventory.load(KSELFTEST / "hosts.toml")
    report = suiterun.run_suite(
        [BLT], PLAN, suite.load_config(KSELFTEST / "hosts.toml", inv.plan.smoke), "svm-two",
        tests={n: art.selftests[n] for n in names}, out_dir=tmp_path / "suite",
        kernels=suiterun.Kernels(base_art.kernel, art.kernel), kselftest=KSELFTEST,
        reporter=RecordingReporter())
    hs = report.hosts[0]
    assert not hs.infra, hs.infra
    assert hs.kinds == ("tcg-amd", "qemu-amd-blt")
    assert [(c.test, c.verdict) for c in hs.comparisons] == [(n, Verdict.SAME) for n in names]
    assert all(r.status is Status.PASS for c in hs.comparisons for r in (*c.base, *c.series))
    assert report.exit_code == 0
    # Its results say so: emulated, on kseries' model (as Testing done labels them), and
    # with no count check of the model (the suite runs no feature test).
    for r in (r for rounds in hs.reports.values() for r in rounds):
        assert r.evidence == "emulated" and "15.14.5" in model.emulated_by(r.emulator)
        assert all(t.ok for t in r.tests), [(t.name, t.reason) for t in r.tests if not t.ok]
        assert CHECK_MODEL not in {t.name for t in r.tests}
    # Each guest ran on kseries' QEMU: only it writes the model's trace file (no bus
    # lock in these tests, so the trace itself stays empty).
    guests = sorted((tmp_path / "suite").rglob("console.log"))
    assert len(guests) == 2 * len(report.groups)  # both kernels, each shard
    assert all((g.parent / qemu.MODEL_TRACE).is_file() for g in guests)


# Broken series, derived from merged: each edit is one line of a change template.
BROKEN = {
    # The completion never sets the counter: the same instruction exits forever.
    "noprogress": ("merged/changes/svm-buslock.toml.j2",
                   "\t\tsvm->vmcb->control.bus_lock_counter = 1;",
                   "\t\tsvm->vmcb->control.bus_lock_counter = 0;"),
    # init_vmcb() never sets the intercept: the CPU never exits.
    "nointercept": ("common/svm-enable.toml.j2",
                    "\t\tsvm_set_intercept(svm, INTERCEPT_BUSLOCK);",
                    "\t\tsvm_clr_intercept(svm, INTERCEPT_BUSLOCK);"),
    # The intercept in the wrong word (offset 10h, bit 5, not 14h): the CPU never exits.
    "wrongbit": ("common/svm-defs.toml.j2",
                 "\tINTERCEPT_BUSLOCK = {{ f.intercept.value }},",
                 "\tINTERCEPT_BUSLOCK = {{ f.intercept.value - 32 }},"),
}


def broken_series(tmp: Path, name: str) -> Path:
    """A copy of the shipped series with one edit, as a series directory of its own."""
    where, old, new = BROKEN[name]
    root = tmp / "templates-series"
    shutil.copytree(TEMPLATES / "series", root)
    path = root / where
    text = path.read_text()
    assert text.count(old) == 1, f"{where} no longer has {old!r}"
    if name == "wrongbit":  # the base may give the entry no explicit value: make it one
        text = text.replace("\tINTERCEPT_BUSLOCK,\n", new.replace("\t", "\t", 1) + "\n")
    path.write_text(text.replace(old, new))
    series = root / f"broken-{name}"
    (root / "merged").rename(series)
    return series


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_series_fails_on_the_model(name: str, emu: emulator.Emulator,
                                            tmp_path: Path) -> None:
    artifacts_or_build()
    series_dir = broken_series(tmp_path, name)
    art = artifacts.build(base(), TEMPLATES, series_dir, KSELFTEST, "vm",
                          smoke=inventory.load(KSELFTEST / "hosts.toml").plan.smoke)
    t0 = time.monotonic()
    report = run_on_blt(tmp_path, art, series_dir)
    host = report.hosts[0]
    assert not host.infra_error, host.infra_error  # a failure of the test, not a hang
    assert time.monotonic() - t0 < BLT.qemu.timeout if BLT.qemu else True
    status, ok, reason = outcome(report, PLAN.feature)
    assert (status, ok) == (Status.FAIL, False), reason
    model_status, _, model_reason = outcome(report, CHECK_MODEL)
    if name == "noprogress":  # the same instruction exits again: its add never happens
        assert ("guest value is 0, expected 1" in reason or "No progress after" in reason), \
            reason
    else:  # the model delivered no exit at all, and says so
        assert host.model.get("exits") == 0, host.model
        assert model_status == Status.FAIL and "model: 0 exits" in model_reason
        assert "got 0 bus lock exits, expected 100" in reason
    assert report.exit_code == 2


# --- faults ------------------------------------------------------------------------


def kseries(*argv: str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kseries", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("kseries: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(name="private_kselftest")
def private_kselftest_fixture(tmp_path: Path) -> Iterator[Callable[[str | None], Path]]:
    """Copies of kselftest/ whose emulator patch is another (a build key of its own);
    what their builds leave in the cache is removed after the test."""
    made: list[Path] = []

    def make(patch: str | None = None) -> Path:
        k = tmp_path / "kselftest"
        shutil.copytree(KSELFTEST, k)
        (tmp_path / "templates").symlink_to(TEMPLATES)  # KSERIES_ROOT=tmp_path works too
        if patch is not None:
            emulator.load_spec(k).patch.write_text(patch)
        made.append(k)
        return k

    yield make
    shipped = emulator.load_spec(KSELFTEST).key()  # the machine's own emulator stays
    for k in made:
        key = emulator.load_spec(k).key()  # as the test left it
        for d in (emulator.root() / f"work-{key}", emulator.root() / key):
            if key != shipped:
                shutil.rmtree(d, ignore_errors=True)


def test_an_unreachable_archive_is_one_line(tmp_path: Path) -> None:
    env = {"KSERIES_CACHE": str(tmp_path / "cache"),
           "KSERIES_DEBIAN_MIRROR": "http://127.0.0.1:9/debian"}
    r = kseries("build", "--emulator", env=env)
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "cannot reach Debian's archive (trixie at http://127.0.0.1:9/debian)" in line
    assert not list((tmp_path / "cache" / "emulator").glob("*/qemu-system-x86_64"))


def test_a_pinned_version_gone_from_the_archive_is_one_line(
        private_kselftest: Callable[[str | None], Path]) -> None:
    k = private_kselftest(None)
    toml = k / "emulator" / "emulator.toml"
    toml.write_text(toml.read_text().replace('version = "1:10.0.13+ds-0+deb13u1"',
                                             'version = "1:10.0.0+ds-9"')
                    .replace('accept = "1:10.0."', 'accept = "1:9.9."'))
    spec = emulator.load_spec(k)
    with pytest.raises(KseriesError, match=r"qemu 1:10\.0\.0\+ds-9 is not in trixie at "):
        emulator.ensure(spec)


def test_a_patch_that_does_not_apply_is_one_line(
        emu: emulator.Emulator, private_kselftest: Callable[[str | None], Path]) -> None:
    bad = ("--- a/target/i386/svm.h\n+++ b/target/i386/svm.h\n@@ -1,3 +1,3 @@\n"
           "-this line is not in QEMU\n+nor is this one\n context\n context\n")
    spec = emulator.load_spec(private_kselftest(bad))
    with pytest.raises(KseriesError, match=r"does not apply to qemu 1:10\.0\.13") as exc:
        emulator.ensure(spec)
    assert "port the patch" in str(exc.value)
    assert emulator.find(spec) is None


def test_a_failing_build_names_its_log(
        emu: emulator.Emulator, private_kselftest: Callable[[str | None], Path]) -> None:
    # The project's patch plus a line that breaks meson's configure step.
    broken = emu.spec.patch.read_text() + (
        "--- a/meson.build\n+++ b/meson.build\n@@ -1,2 +1,3 @@\n"
        " project('qemu', ['c'], meson_version: '>=1.5.0',\n"
        "+  this_is_not_meson(,\n")
    spec = emulator.load_spec(private_kselftest(broken))
    with pytest.raises(KseriesError) as exc:
        emulator.ensure(spec)
    assert "full log: " in str(exc.value) and "configure.log" in str(exc.value)
    assert emulator.find(spec) is None


def test_ctrl_c_in_the_build_exits_130_and_leaves_no_emulator(
        emu: emulator.Emulator, private_kselftest: Callable[[str | None], Path],
        tmp_path: Path) -> None:
    # Another key (one more comment line in the patch): a build of its own, stopped early.
    k = private_kselftest(emu.spec.patch.read_text() + "\n")
    spec = emulator.load_spec(k)
    child = subprocess.Popen([sys.executable, "-m", "kseries", "build", "--emulator"],
                             env={**os.environ, "KSERIES_ROOT": str(tmp_path)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             process_group=0)
    work = emulator.root() / f"work-{spec.key()}"
    deadline = time.monotonic() + 300
    while not (work / "build" / "build.ninja").exists() and time.monotonic() < deadline:
        time.sleep(0.5)  # interrupt once ninja runs
    time.sleep(3)
    os.kill(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "interrupted" in one_line(err)
    assert emulator.find(spec) is None  # a half-built emulator is never taken for a whole one
    assert not (emulator.root() / spec.key()).exists()
