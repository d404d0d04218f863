"""The suite as data, the comparison of two kernels test by test, and kernel splats.

Pure functions on made-up results and kernel logs; the real runs under TCG are
in test_suite_runs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.build import suitetests
from kseries.errors import KseriesError
from kseries.run import ktap, splats, suite, suitejudge, suiterun
from kseries.run.ktap import Status
from kseries.run.outcome import DONE, GuestRun, parse_output
from kseries.run.suite import KnownFailure, Result, Verdict, compare

ROOT = Path(__file__).resolve().parents[1]
P, F, S, E = Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR


def rs(*statuses: Status, reason: str = "") -> list[Result]:
    return [Result(s, reason if s in (F, E) else "") for s in statuses]


# --- the comparison ---------------------------------------------------------------------

def test_pass_or_skip_alike_is_same() -> None:
    assert compare("t", rs(P), rs(P)).verdict is Verdict.SAME
    assert compare("t", rs(S, S), rs(S, S)).verdict is Verdict.SAME


def test_a_failure_only_on_the_series_is_a_regression() -> None:
    c = compare("t", rs(P), rs(F, reason="exit code 254: x == 1"))
    assert c.verdict is Verdict.REGRESSION and c.fails_run
    assert "exit code 254" in c.why
    assert compare("t", rs(S), rs(E, reason="TIMEOUT")).verdict is Verdict.REGRESSION


def test_a_failure_on_both_is_same_and_a_known_one_says_why() -> None:
    line = "svm_nested_soft_inject_test.c:137: vmcb->control.next_rip == 0x4011a2"
    reason = f"exit code 254: {line.replace('0x4011a2', '0x401ff0')}"
    known = KnownFailure("svm_nested_soft_inject_test", "TCG does not emulate NRIPS", line)
    c = compare("svm_nested_soft_inject_test", rs(F, reason=reason), rs(F, reason=reason),
                known, "tcg-amd")
    assert c.verdict is Verdict.SAME and not c.fails_run
    assert c.why == "fails as expected on tcg-amd (TCG does not emulate NRIPS) on both"
    # Without the known failure it is still the same: the list only explains it.
    plain = compare("t", rs(F, reason=reason), rs(F, reason=reason))
    assert plain.verdict is Verdict.SAME and plain.why.startswith("fails the same way on both")


def test_a_different_failure_is_a_regression() -> None:
    c = compare("t", rs(F, reason="exit code 254: a.c:10: x == 1"),
                rs(F, reason="exit code 254: a.c:99: y == 2"))
    assert c.verdict is Verdict.REGRESSION and "fails differently" in c.why
    # The numbers alone (values, line numbers) moving is the same failure.
    same = compare("t", rs(F, reason="a.c:10: x == 0x12"), rs(F, reason="a.c:12: x == 0x99"))
    assert same.verdict is Verdict.SAME


def test_fixed_and_changed() -> None:
    assert compare("t", rs(F, reason="x"), rs(P)).verdict is Verdict.FIXED
    c = compare("t", rs(P), rs(S))
    assert c.verdict is Verdict.CHANGED and not c.fails_run


def test_flaky_is_not_a_regression_but_a_new_failure_rate_is() -> None:
    flaky = compare("t", rs(P, F, P, F, reason="x"), rs(F, P, P, F, reason="x"))
    assert flaky.verdict is Verdict.FLAKY and not flaky.fails_run
    assert flaky.why == "pass rate 2/4 on the base, 2/4 on the series"
    # It never failed on the base and fails once in four on the series: a regression.
    once = compare("t", rs(P, P, P, P), rs(P, F, P, P, reason="x"))
    assert once.verdict is Verdict.REGRESSION and "fails 1 of 4 rounds" in once.why


def test_a_test_known_to_be_flaky_on_the_host_kind() -> None:
    why = "its IPIs are late when the host's CPU is busy"
    one = compare("t", rs(P), rs(F, reason="x"), kind="tcg-amd", flaky=why)
    assert one.verdict is Verdict.FLAKY and not one.fails_run
    assert one.why.startswith(f"known to be flaky on tcg-amd ({why}): pass rate 1/1 on the "
                              "base, 0/1 on the series")
    assert compare("t", rs(F, reason="x"), rs(P), flaky=why).verdict is Verdict.FLAKY
    # Failing in every one of several rounds on the series alone is still a regression.
    every = compare("t", rs(P, P, P), rs(F, F, F, reason="x"), flaky=why)
    assert every.verdict is Verdict.REGRESSION
    config = suite.parse_config({"flaky": {"tcg-amd": {"t": why}}}, Path("h.toml"), ())
    assert config.flaky_reason(("tcg-amd", "qemu-amd"), "t") == why
    assert config.flaky_reason(("kvm-amd",), "t") == ""


def test_a_known_failure_that_passed_on_the_base_once_is_flaky() -> None:
    line = "x86_64/apic_bus_clock_test.c:91: freq < apic_hz * 105 / 100"
    known = KnownFailure("apic_bus_clock_test", "TCG's clock is off", line)
    failing = rs(F, reason=f"FAIL: {line}")
    c = compare("apic_bus_clock_test", rs(P), failing, known, "tcg-amd")
    assert c.verdict is Verdict.FLAKY and not c.fails_run
    assert c.why.startswith("fails as expected on tcg-amd (TCG's clock is off) on the series, "
                            "and passed on the base this time")
    # Another failure of the same test is no known one: a regression.
    other = compare("apic_bus_clock_test", rs(P), rs(F, reason="FAIL: other.c:1: x"), known,
                    "tcg-amd")
    assert other.verdict is Verdict.REGRESSION
    # Nor is a known failure's test timing out (ERROR) instead of failing its assertion.
    hang = compare("apic_bus_clock_test", rs(P), rs(E, reason=f"TIMEOUT {line}"), known)
    assert hang.verdict is Verdict.REGRESSION


def test_a_series_only_failure_counts_when_its_reruns_fail_again() -> None:
    first = compare("t", rs(P), rs(F, reason="a.c:1: x == 1"))
    assert first.verdict is Verdict.REGRESSION
    # It fails again on the series, never on the base: still a regression, with the reruns.
    again = suite.confirm(first, rs(P, P), rs(F, P, reason="a.c:1: x == 1"))
    assert again.verdict is Verdict.REGRESSION and again.fails_run
    assert again.why.endswith("run again alone 2 time(s) on each kernel: failed 1 of 2 on "
                              "the series, passed 2/2 on the base")
    assert [r.rerun for r in again.series] == [False, True, True]
    assert len(again.base) == 3
    # It does not fail again: flaky, not a regression, and the rates say why.
    gone = suite.confirm(first, rs(P, P), rs(P, P))
    assert gone.verdict is Verdict.FLAKY and not gone.fails_run
    assert gone.why.startswith("did not fail again: fails on the series")
    assert gone.why.endswith("pass rate 2/2 on the base, 2/2 on the series")
    # It fails on the base as well when run again: the host's, not the series'.
    both = suite.confirm(first, rs(F, P, reason="a.c:1: x == 1"), rs(F, F, reason="a.c:1: x"))
    assert both.verdict is Verdict.FLAKY


def test_reruns_are_data() -> None:
    config = suite.load_config(ROOT / "kselftest" / "hosts.toml", ())
    assert config.reruns == 2
    assert suite.parse_config({"tests": {"reruns": 0}}, Path("h.toml"), ()).reruns == 0
    for bad in (-1, "2", True):
        with pytest.raises(KseriesError, match=r"h.toml: \[tests\] reruns must be a whole"):
            suite.parse_config({"tests": {"reruns": bad}}, Path("h.toml"), ())


def test_a_test_run_on_one_kernel_only_is_not_compared() -> None:
    assert compare("t", [], rs(P)).verdict is Verdict.NOT_COMPARED
    counts = suite.counts([compare("t", [], rs(P)), compare("u", rs(P), rs(P))])
    assert counts["same"] == 1 and counts["not compared"] == 1 and counts["regression"] == 0


# --- the suite as data --------------------------------------------------------------------

def test_the_inventory_suites_and_known_failures() -> None:
    config = suite.load_config(ROOT / "kselftest" / "hosts.toml", ("a", "b"))
    assert config.suites["smoke"] == ("a", "b")
    assert "svm" in config.suites and "all" in config.names()
    known = config.known_failure(("tcg-amd", "qemu-amd"), "svm_nested_soft_inject_test")
    assert known is not None and "NRIPS" in known.reason
    assert config.known_failure(("tcg-amd",), "nested_exceptions_test") is not None
    assert config.known_failure(("kvm-amd",), "svm_nested_soft_inject_test") is None


def test_bad_suite_data_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KseriesError, match="cannot redefine 'all'"):
        suite.parse_config({"suites": {"all": ["x"]}}, tmp_path / "h.toml", ())
    with pytest.raises(KseriesError, match="needs a reason"):
        suite.parse_config({"known_failures": {"tcg-amd": {"t": {"line": "x"}}}},
                           tmp_path / "h.toml", ())
    with pytest.raises(KseriesError, match="not a regular expression"):
        suite.parse_config({"splat_allowlist": [{"match": "(", "reason": "r"}]},
                           tmp_path / "h.toml", ())
    config = suite.parse_config({"suites": {"mine": ["t1", "nope"]}}, tmp_path / "h.toml", ())
    with pytest.raises(KseriesError, match="the base does not build nope"):
        config.select("mine", ["t1", "t2"])
    with pytest.raises(KseriesError, match=r"no such suite.*suites: all, smoke, mine"):
        config.select("other", ["t1"])
    assert config.select("all", ["t1", "t2"]) == ["t1", "t2"]


def test_tests_in_the_base_makefile() -> None:
    old = ("TEST_GEN_PROGS_x86_64 = x86_64/cpuid_test\n"
           "TEST_GEN_PROGS_x86_64 += x86_64/smm_test  # SMM\n"
           "TEST_GEN_PROGS_x86_64 += demand_paging_test\n"
           "TEST_GEN_PROGS_EXTENDED_x86_64 += x86_64/nx_huge_pages_test\n")
    assert suitetests.tests_in_makefile(old, "TEST_GEN_PROGS_x86_64") == [
        "cpuid_test", "smm_test", "demand_paging_test"]
    new = ("TEST_GEN_PROGS_COMMON = demand_paging_test\nTEST_GEN_PROGS_COMMON += rseq_test\n"
           "TEST_GEN_PROGS_x86 = $(TEST_GEN_PROGS_COMMON)\n"
           "TEST_GEN_PROGS_x86 += x86/cpuid_test \\\n\tx86/smm_test\n")
    assert suitetests.tests_in_makefile(new, "TEST_GEN_PROGS_x86") == [
        "demand_paging_test", "rseq_test", "cpuid_test", "smm_test"]


def test_shards_deal_the_tests_round_robin() -> None:
    assert suiterun.shards_of(["a", "b", "c"], 2) == [["a", "c"], ["b"]]
    assert suiterun.shards_of(["a"], 4) == [["a"]]


def test_shards_are_merged_into_one_run() -> None:
    def shard(facts: str, results: list[tuple[str, bool]], dmesg: str, done: bool = True,
              error: str = "") -> GuestRun:
        doc = ktap.emit([ktap.TestResult(0, n, ok, diagnostics=[f"out of {n}"])
                         for n, ok in results])
        text = (f"KSERIES-FACTS-BEGIN\n{facts}\nKSERIES-FACTS-END\nKSERIES-KTAP-BEGIN\n{doc}"
                f"KSERIES-KTAP-END\nKSERIES-DMESG-BEGIN\n{dmesg}\nKSERIES-DMESG-END\n"
                + (f"{DONE}\n" if done else ""))
        return GuestRun(output=text, console="console", infra_error=error, duration=3.0)

    one = shard("dev_kvm=yes", [("a", True), ("c", False)], "[ 1.0] kseries-test: start 1 a")
    two = shard("dev_kvm=yes", [("b", True)], "[ 1.0] kseries-test: start 1 b")
    merged = suitejudge.merge([one, two], [["a", "c"], ["b"]])
    out = parse_output(merged.output)
    assert out.done and out.fact("dev_kvm") == "yes"
    doc = ktap.parse(out.ktap_text, strict=True)
    assert [(r.name, r.ok) for r in doc.results] == [("a", True), ("c", False), ("b", True)]
    assert doc.results[2].diagnostics == ["out of b"]
    assert "start 1 a" in out.dmesg and "start 1 b" in out.dmesg
    lost = suitejudge.merge([one, shard("", [], "", done=False, error="guest hung")],
                          [["a", "c"], ["b"]])
    assert lost.infra_error == "shard 2 (b..b): guest hung"
    assert not parse_output(lost.output).done


# --- kernel splats ------------------------------------------------------------------------

LOG = """\
[    0.500000] kvm_amd: Nested Virtualization enabled
[    0.600000] WARNING: CPU: 0 PID: 1 at kernel/time/clocksource.c:99 boot_thing+0x1/0x2
[    2.000000] kseries-test: start 1 svm_vmcall_test
[    2.100000] ------------[ cut here ]------------
[    2.100000] kvm: a message of the WARN
[    2.100001] WARNING: CPU: 0 PID: 77 at arch/x86/kvm/svm/nested.c:612 nested_vmrun+0x3a/0x2f0
[    2.100002] Modules linked in:
[    2.100003] Call Trace:
[    2.300000] kseries-test: end 1 svm_vmcall_test rc=0
[    2.400000] kseries-test: start 2 smm_test
[    2.500000] ======================================================
[    2.500001] WARNING: possible circular locking dependency detected
[    2.500002] 6.12.117 #1 Not tainted
[    2.500003] ------------------------------------------------------
[    2.500004] smm_test/88 is trying to acquire lock:
[    2.500005] (&kvm->srcu){....}, at: kvm_vcpu_ioctl+0x1/0x2 arch/x86/kvm/x86.c:123
[    2.600000] kseries-test: end 2 smm_test rc=0
[  125.000000] INFO: task kworker/0:1:12 blocked for more than 120 seconds.
"""


def test_splats_are_found_and_attributed_to_the_test_running() -> None:
    found = splats.scan(LOG)
    assert [(s.kind, s.test, s.during) for s in found] == [
        ("WARNING", splats.BOOT, False), ("WARNING", "svm_vmcall_test", True),
        ("lockdep", "smm_test", True), ("hung task", "smm_test", False)]
    warn = found[1]
    assert warn.identity == ("WARNING: WARNING: at arch/x86/kvm/svm/nested.c "
                             "nested_vmrun")
    assert warn.where == "during svm_vmcall_test"
    assert found[3].where == "after smm_test ended"
    assert "Call Trace:" in warn.lines and not any("kseries-test" in ln for ln in warn.lines)
    assert warn.lines[0] == "kvm: a message of the WARN"  # what the WARN() said, above it
    assert "x86.c" in found[2].identity  # lockdep reports are told apart by their source


def test_the_same_warning_at_another_line_is_the_same_splat() -> None:
    base = splats.scan(LOG.replace("nested.c:612", "nested.c:598"))
    series = splats.scan(LOG)
    cmp = splats.compare(base, series)
    assert not cmp.new and len(cmp.same) == 4


def test_a_splat_only_the_series_prints_is_a_regression_unless_allowed() -> None:
    base_log = "\n".join(ln for ln in LOG.splitlines() if "nested.c" not in ln)
    cmp = splats.compare(splats.scan(base_log), splats.scan(LOG))
    assert [s.test for s in cmp.new] == ["svm_vmcall_test"]
    assert not cmp.gone
    allow = suite.parse_config({"splat_allowlist": [
        {"match": "nested_vmrun", "reason": "made up", "hosts": ["tcg-amd"]}]},
        Path("h.toml"), ()).allowlist
    on_tcg = splats.compare(splats.scan(base_log), splats.scan(LOG), allow, ("tcg-amd",))
    assert not on_tcg.new and on_tcg.allowed[0][1] == "made up"
    elsewhere = splats.compare(splats.scan(base_log), splats.scan(LOG), allow, ("kvm-amd",))
    assert len(elsewhere.new) == 1
    # What only the base printed is gone, not a regression.
    gone = splats.compare(splats.scan(LOG), splats.scan(base_log))
    assert not gone.new and [s.test for s in gone.gone] == ["svm_vmcall_test"]


def test_every_kind_the_issue_names_is_recognised() -> None:
    lines = {
        "KASAN": "BUG: KASAN: slab-out-of-bounds in svm_vcpu_run+0x1/0x2",
        "UBSAN": "UBSAN: shift-out-of-bounds in arch/x86/kvm/svm/svm.c:100:5",
        "lockdep": "WARNING: suspicious RCU usage",
        "RCU stall": "rcu: INFO: rcu_sched self-detected stall on CPU",
        "soft lockup": "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [smm_test:90]",
        "BUG": "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:5",
        "Oops": "Oops: general protection fault, probably for non-canonical address",
    }
    for kind, line in lines.items():
        found = splats.scan(f"[    1.000000] {line}\n")
        assert [s.kind for s in found] == [kind], line
    assert splats.scan("[ 1.0] kvm: no hardware support for 'kvm_intel'\n") == []
