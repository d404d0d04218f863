"""The KVM selftest suite under TCG, for real: both kernels, compared test by test.

- The whole suite once, on the AMD host, on the unpatched base's vm kernel and
  v2's (the kernels test_qemu.py builds, see conftest_harness; the suite's
  binaries are built from v2's tip, ~15 s): no regression, the known TCG
  failures fail on both and say why.
- A deliberately broken copy of the series (built in the same vm build
  directory: an incremental rebuild of x86.o and nested.o and the link): the
  guest may read MSR_PLATFORM_INFO even where userspace disabled it, which only
  platform_info_test notices; and its nested VMRUN path warns. (Dropping
  init_vmcb()'s #UD intercept was tried first: it breaks the nested smoke
  tests too, an unhandled #UD in L1.) The suite names the regression, the smoke set alone shows
  none, and the warning is caught as a new splat, attributed to the test that
  was running, which itself passed. The base kernel's guests are those of the
  whole-suite run (the same binaries and shards), not run again.
- A test made flaky on purpose: stand-in programs (not KVM selftests, said so
  here) fail in chosen rounds: one on both kernels (FLAKY); two on the series'
  kernel only, in round 3 of 3, which then run again alone twice on each
  kernel: the one that fails again is a regression with its rate, the one that
  does not is FLAKY.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest_harness import (
    KSELFTEST,
    PLAN,
    SMOKE,
    artifacts_or_build,
    configured_as_now,
    static_program,
)
from kseries.base import bases
from kseries.build import artifacts, bzimage, suitetests
from kseries.errors import KseriesError
from kseries.progress import NullReporter
from kseries.run import qemu, suite, suitejudge, suiteresults, suiterun
from kseries.run.identity import SeriesId
from kseries.run.inventory import Host, QemuSettings
from kseries.run.ktap import Status
from kseries.run.suite import Verdict

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
AMD = Host("qemu-amd", "amd", "qemu", frozenset({"svm", "nested"}),
           qemu=QemuSettings(cpu="EPYC,+svm", timeout=180))
TCG = qemu.Accel("tcg", "test")
CONFIG = suite.load_config(KSELFTEST / "hosts.toml", SMOKE)
BROKEN = "broken-suite"  # the broken copy's name: its build record is its own
PLATFORM_INFO_OPEN = '''
[[edit]]
file = "arch/x86/kvm/x86.c"
fact = "the read of MSR_PLATFORM_INFO without KVM_CAP_MSR_PLATFORM_INFO (opened on purpose)"
within = '^int kvm_get_msr_common\\('
op = "replace"
anchor = '!vcpu->kvm->arch\\.guest_can_read_msr_platform_info\\)'
text = "false)"
'''
# Per series, a line of its nested VMRUN code and what the broken copy puts there.
WARNING = '\tWARN_ONCE(1, "kseries: a deliberate warning on nested VMRUN");\n'
NESTED_LINE = {"v2": "\tvmcb02->control.bus_lock_counter = vmcb01->control.bus_lock_counter;\n",
               "merged": "\t\tvmcb02->control.bus_lock_counter = 0;\n"}


@dataclass(frozen=True)
class Kernels:
    series: str  # the series whose vm build is used
    base: Path
    patched: Path


@pytest.fixture(scope="module")
def base_612() -> bases.Base:
    from conftest import debian
    return debian("6.12")


@pytest.fixture(scope="module")
def vm(base_612: bases.Base) -> Kernels:
    """The vm kernels of the base and a series: v2's as test_qemu.py builds them (or
    merged's, where only it was built here), else built now (the slow way)."""
    for series in ("v2", "merged"):
        try:
            base = artifacts.load(base_612, "vm", series, patched=False)
            tip = artifacts.load(base_612, "vm", series, patched=True)
        except KseriesError:
            continue
        if (base.kernel and tip.kernel and base.kernel.is_file() and tip.kernel.is_file()
                and configured_as_now(base) and configured_as_now(tip)):
            return Kernels(series, base.kernel, tip.kernel)
    art = artifacts_or_build()
    assert art.patched_kernel is not None
    return Kernels("v2", art.kernel, art.patched_kernel)


@pytest.fixture(scope="module")
def suite_tests(vm: Kernels, base_612: bases.Base) -> dict[str, Path]:
    """Every test the base builds, built static from the series' tip (kseries' suite
    build), or found in $KSERIES_TEST_SUITE_SELFTESTS (a directory holding them all)."""
    names = suitetests.built_by_base(base_612)
    given = os.environ.get("KSERIES_TEST_SUITE_SELFTESTS")
    if given:
        found = {n: p for n in names for p in sorted(Path(given).rglob(n))[:1]}
        assert set(found) == set(names), f"{given} lacks {set(names) - set(found)}"
        return {n: found[n] for n in names}
    return suitetests.binaries(base_612, TEMPLATES, vm.series, names)


@pytest.fixture(scope="module")
def whole(vm: Kernels, suite_tests: dict[str, Path],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[suiterun.SuiteReport]:
    """The whole suite on the AMD host, both kernels of the series, as many guests as
    cores."""
    tests = suite_tests
    out = tmp_path_factory.mktemp("whole")
    t0 = time.monotonic()
    report = suiterun.run_suite([AMD], PLAN, CONFIG, suite.ALL, tests=tests, out_dir=out,
                                kernels=suiterun.Kernels(vm.base, vm.patched),
                                kselftest=KSELFTEST, reporter=NullReporter(), accel=TCG,
                                patched=vm.series == "v2")
    print(f"\nwhole suite: {len(tests)} tests, both kernels, {report.jobs} guests at once: "
          f"{time.monotonic() - t0:.0f} s")
    yield report


def test_the_whole_suite_on_both_kernels_of_a_series(whole: suiterun.SuiteReport,
                                                      vm: Kernels) -> None:
    hs = whole.hosts[0]
    assert not hs.infra, hs.infra
    assert len(hs.comparisons) == len(whole.tests) > 80
    assert not hs.regressions, [(c.test, c.why) for c in hs.regressions]
    assert not hs.splats.new, [s.identity for s in hs.splats.new]
    verdicts = {c.test: c for c in hs.comparisons}
    for name in SMOKE:
        assert verdicts[name].verdict is Verdict.SAME, verdicts[name].why
    # The known TCG failures fail on both kernels and say why. (Those that hang on
    # timing may pass once in a while; never a regression.)
    for name, known in CONFIG.known["tcg-amd"].items():
        c = verdicts[name]
        assert c.verdict is not Verdict.REGRESSION, (name, c.why)
        if all(r.status in suite.FAILING for r in (*c.base, *c.series)):
            assert c.why == f"fails as expected on tcg-amd ({known.reason}) on both", c.why
    # design.md's two TCG failures: the same on both kernels; a failure is the known one.
    # (QEMU 10.0, Debian 13's, gives the right EXITINFO1: nested_exceptions_test passes.)
    for name in ("svm_nested_soft_inject_test", "nested_exceptions_test"):
        c = verdicts[name]
        assert c.verdict is Verdict.SAME, (name, c.why)
        assert c.known is not None or all(r.status is not Status.FAIL
                                          for r in (*c.base, *c.series)), (name, c.why)
    # Every test of the suite ran on both kernels, in more than one guest.
    assert all(c.base and c.series for c in hs.comparisons)
    assert len(whole.groups) == whole.jobs
    ids = {"base": SeriesId(patched=False), "series": SeriesId(vm.series, 2)}
    suiteresults.write(whole, ids, {"base": Path("b"), "series": Path("s")})
    assert whole.exit_code == 0


@pytest.fixture(scope="module")
def broken_kernel(base_612: bases.Base, vm: Kernels,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The series with MSR_PLATFORM_INFO readable whatever userspace says and a WARN on
    nested VMRUN, built in the vm build directory (incremental from the series' tip:
    x86.o, nested.o, the link)."""
    t = tmp_path_factory.mktemp("broken") / "templates"
    shutil.copytree(TEMPLATES, t)
    (t.parent / "kselftest").symlink_to(KSELFTEST)  # the profiles' fragments live there
    shutil.copytree(t / "series" / vm.series, t / "series" / BROKEN)
    changes = t / "series" / BROKEN / "changes"
    with (changes / "svm-buslock.toml.j2").open("a") as fh:
        fh.write(PLATFORM_INFO_OPEN)
    nested = changes / "svm-nested.toml.j2"
    line = NESTED_LINE[vm.series]
    assert line in nested.read_text()
    nested.write_text(nested.read_text().replace(line, line + WARNING))
    t0 = time.monotonic()
    built = artifacts.build(base_612, t, t / "series" / BROKEN, KSELFTEST, "vm", smoke=(),
                            patched=True)
    print(f"\nbroken series: built in {time.monotonic() - t0:.0f} s "
          f"(make {built.make_seconds:.0f} s)")
    assert built.kernel is not None
    return built.kernel


def test_a_broken_series_regresses_where_the_smoke_set_sees_nothing(
        whole: suiterun.SuiteReport, broken_kernel: Path, vm: Kernels,
        suite_tests: dict[str, Path], tmp_path: Path) -> None:
    report = suiterun.run_suite([AMD], PLAN, CONFIG, suite.ALL, tests=suite_tests,
                                out_dir=tmp_path,
                                kernels=suiterun.Kernels(vm.base, broken_kernel),
                                kselftest=KSELFTEST, reporter=NullReporter(), accel=TCG,
                                base_from=whole, patched=vm.series == "v2")
    hs = report.hosts[0]
    assert not hs.infra, hs.infra
    regressed = {c.test: c for c in hs.regressions}
    assert "platform_info_test" in regressed, [
        (c.test, c.why) for c in hs.comparisons if c.verdict is not Verdict.SAME]
    assert regressed["platform_info_test"].why.startswith("fails on the series")
    # The smoke set alone would have missed it.
    assert not [t for t in SMOKE if t in regressed]
    # The warning of the nested VMRUN path: a new splat (once per guest: WARN_ONCE), put
    # on the test running in each, among them a test that itself passed.
    (warn,) = hs.splats.new
    assert warn.kind == "WARNING" and "svm/nested.c" in warn.identity
    assert any("kseries: a deliberate warning" in line for line in warn.lines)
    on = [c for c in hs.comparisons if warn.identity in c.splats]
    assert on and all(s.during for s in suitejudge.splats_of(hs, suitejudge.SERIES, {})
                      if s.identity == warn.identity)
    assert any(c.verdict is Verdict.SAME and all(r.status.value == "PASS" for r in c.series)
               for c in on), [(c.test, c.verdict) for c in on]
    assert report.exit_code == 2


FLAKY = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* A stand-in, not a KVM selftest: fails in round 2, whatever the kernel. */
int main(void) {
    const char *round = getenv("KSERIES_ROUND");
    if (round && strcmp(round, "2") == 0) { puts("stand-in: failing in round 2"); return 1; }
    return 0;
}
"""
SERIES_ONLY = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
/* A stand-in, not a KVM selftest: fails on the series' kernel (known by its build
   version, SERIES_VERSION) in round 3, and with FROM_ROUND_3 in every round after it
   too (the reruns are rounds 4 and 5); never on the base's. */
int main(void) {
    const char *round = getenv("KSERIES_ROUND");
    int r = round ? atoi(round) : 0;
    struct utsname u;
    int series = uname(&u) == 0 && strcmp(u.version, SERIES_VERSION) == 0;
    if (series && (r == 3 || (FROM_ROUND_3 && r > 3))) { puts("stand-in: failing"); return 1; }
    return 0;
}
"""


def test_a_flaky_test_is_flaky_and_a_new_rare_failure_a_regression(
        vm: Kernels, tmp_path: Path) -> None:
    version = bzimage.read(vm.patched).version
    if version == bzimage.read(vm.base).version:
        pytest.skip("the two kernels carry the same build version: rebuild one of them")
    quoted = version.replace("\\", "\\\\").replace('"', '\\"')

    def series_only(name: str, from_round_3: int) -> Path:
        return static_program(tmp_path, name, f'#define SERIES_VERSION "{quoted}"\n'
                              f"#define FROM_ROUND_3 {from_round_3}\n" + SERIES_ONLY)

    tests = {"standin_flaky": static_program(tmp_path, "standin_flaky", FLAKY),
             "standin_series_once": series_only("standin_series_once", 0),
             "standin_series_again": series_only("standin_series_again", 1)}
    report = suiterun.run_suite([AMD], PLAN, CONFIG, "standins", tests=tests,
                                out_dir=tmp_path / "res", rounds=3, shards=1,
                                kernels=suiterun.Kernels(vm.base, vm.patched),
                                kselftest=KSELFTEST, reporter=NullReporter(), accel=TCG,
                                patched=vm.series == "v2", reruns=2)
    hs = report.hosts[0]
    assert not hs.infra, hs.infra
    by = {c.test: c for c in hs.comparisons}
    assert by["standin_flaky"].verdict is Verdict.FLAKY
    assert by["standin_flaky"].why == "pass rate 2/3 on the base, 2/3 on the series"
    # A new failure in 1 of 3 rounds that fails again when run again: a regression.
    again = by["standin_series_again"]
    assert again.verdict is Verdict.REGRESSION and "fails 1 of 3 rounds" in again.why
    assert again.why.endswith("failed 2 of 2 on the series, passed 2/2 on the base")
    assert [r.status.value for r in again.series] == ["PASS", "PASS", "FAIL", "FAIL", "FAIL"]
    # One that does not fail again (it ran, alone, twice more on each kernel): flaky.
    once = by["standin_series_once"]
    assert once.verdict is Verdict.FLAKY and once.why.startswith("did not fail again")
    assert [r.rerun for r in once.base] == [False, False, False, True, True]
    assert (tmp_path / "res" / "series" / "qemu-amd" / "rerun4").is_dir()
    assert report.exit_code == 2
