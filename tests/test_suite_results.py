"""A suite run's results, from what the guests printed to the gate and Testing done.

The guests' output here is made up (FIXTURE: the run-tests output of two
kernels, written out below); everything after it is kseries' own code: the
shards are merged and judged as a run is, compared, written to disk as
`kseries run --suite` writes them, read back as submit reads them, and held to
a suite rule of the gate. The real runs under TCG are in test_suite_runs.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kseries.errors import KseriesError
from kseries.render.manifest import SuiteRule, _gate
from kseries.run import ktap, records, suite, suitejudge, suiteresults, suiterun
from kseries.run.identity import SeriesId
from kseries.run.inventory import Host, QemuSettings, TestPlan
from kseries.run.outcome import GuestRun
from kseries.submit import gate, testing
from kseries.submit.evidence import Evidence

AMD = Host("qemu-amd", "amd", "qemu", frozenset({"svm", "nested"}),
           qemu=QemuSettings(cpu="EPYC,+svm"))
PLAN = TestPlan(smoke=("a",), feature="kvm_buslock_test")
KNOWN_LINE = "b.c:137: next_rip == 0x401000"
CONFIG = suite.parse_config(
    {"known_failures": {"tcg-amd": {"b": {"reason": "TCG lacks NRIPS", "line": KNOWN_LINE}}}},
    Path("hosts.toml"), ("a",))
WARN = ("[    3.100000] WARNING: CPU: 0 PID: 70 at arch/x86/kvm/svm/nested.c:612 "
        "nested_vmcb02_prepare_control+0x3a/0x2f0")


def guest(results: dict[str, str], dmesg: list[str]) -> GuestRun:
    """run-tests' output (FIXTURE) for ``results``: test -> PASS / FAIL / SKIP."""
    doc = []
    for name, status in results.items():
        if status == "FAIL":
            line = KNOWN_LINE.replace("0x401000", "0x402000") if name == "b" else "c.c:9: x == 1"
            doc.append(ktap.TestResult(0, name, False, "", "exit code 254",
                                       ["==== Test Assertion Failure ====", f"  {line}"]))
        else:
            doc.append(ktap.TestResult(0, name, True, "SKIP" if status == "SKIP" else "",
                                       "no SVM" if status == "SKIP" else ""))
    log = ["[    0.500000] kvm_amd: Nested Virtualization enabled"]
    for i, name in enumerate(results, start=1):
        log += [f"[    3.0{i}] kseries-test: start {i} {name}",
                *(dmesg if name == "a" else []), f"[    3.2{i}] kseries-test: end {i} {name} rc=0"]
    text = ("KSERIES-FACTS-BEGIN\ndev_kvm=yes\ncpu_vendor=AuthenticAMD\n"
            "kvm_log=[    0.5] kvm_amd: Nested Virtualization enabled\nKSERIES-FACTS-END\n"
            f"KSERIES-KTAP-BEGIN\n{ktap.emit(doc)}KSERIES-KTAP-END\n"
            "KSERIES-DMESG-BEGIN\n" + "\n".join(log) + "\nKSERIES-DMESG-END\nKSERIES-DONE\n")
    return GuestRun(output=text, accel="tcg", duration=5.0)


def host_suite(tmp: Path, series: dict[str, str], series_log: list[str]) -> suitejudge.HostSuite:
    base = {"a": "PASS", "b": "FAIL", "c": "PASS", "d": "SKIP"}
    groups = [["a", "c"], ["b", "d"]]

    def shards(results: dict[str, str], log: list[str]) -> list[GuestRun]:
        return [guest({t: results[t] for t in g}, log) for g in groups]

    runs = {("base", 1): shards(base, []), ("series", 1): shards(series, series_log)}
    return suitejudge.judge_host(AMD, suitejudge.host_kinds(AMD, "tcg"), list(base), runs,
                                 groups, PLAN, CONFIG, tmp / "res", patched=False)


def written(tmp: Path, hs: suitejudge.HostSuite) -> records.RunRecord:
    report = suiterun.SuiteReport("all", ["a", "c", "b", "d"], 1, [hs], tmp / "res", "tcg", 12.0, 2)
    ids = {"base": SeriesId("v2", 2, "", False, "debian:6.12", "b4se"),
           "series": SeriesId("v2", 2, "71p", True, "debian:6.12", "b4se")}
    suiteresults.write(report, ids, {"base": tmp / "base-bzImage", "series": tmp / "bzImage"})
    return records.load(tmp / "res")


def evidence(*runs: records.RunRecord) -> Evidence:
    return Evidence(None, "71p", None, runs, ())  # type: ignore[arg-type]  # no base needed


def test_a_regression_and_a_new_splat_fail_the_suite(tmp_path: Path) -> None:
    hs = host_suite(tmp_path, {"a": "PASS", "b": "FAIL", "c": "FAIL", "d": "SKIP"}, [WARN])
    verdicts = {c.test: c.verdict.value for c in hs.comparisons}
    assert verdicts == {"a": "same", "c": "regression", "b": "same", "d": "same"}
    b = next(c for c in hs.comparisons if c.test == "b")
    assert b.why == "fails as expected on tcg-amd (TCG lacks NRIPS) on both"
    assert [(s.test, s.kind) for s in hs.splats.new] == [("a", "WARNING")]
    assert next(c for c in hs.comparisons if c.test == "a").splats  # a passed, yet it splatted
    rec = written(tmp_path, hs)
    data = json.loads((tmp_path / "res" / "suite.json").read_text())
    host = data["hosts"][0]
    assert host["counts"]["regression"] == 1 and host["regressions"] == ["c"]
    c = next(t for t in host["tests"] if t["test"] == "c")
    assert any("c.c:9: x == 1" in line for line in c["ktap"])  # its KTAP lines
    assert any("start 2 c" in line for line in c["kernel_log"])  # the log while it ran
    assert data["exit_code"] == 2
    ktap.parse((tmp_path / "res" / "suite.ktap").read_text(), strict=True)
    # As submit reads it: the run of the tip, and its suite.
    assert rec.series.tip == "71p" and rec.suite is not None
    s = rec.suite.host("qemu-amd")
    assert s is not None and s.regressions == ("c",) and s.known == (("b", "TCG lacks NRIPS"),)
    assert s.splat_regressions and "nested.c" in s.splat_regressions[0]
    summary = {t.name: t for t in rec.hosts[0].tests}
    assert not summary["c"].ok and summary["c"].against_baseline and summary["a"].ok
    assert not summary["kernel_log"].ok
    (state,) = gate.evaluate([SuiteRule("all", "tcg-amd")], evidence(rec))
    assert not state.met and "regression in c" in state.found
    lines = "\n".join(testing.suite_host_lines(rec, rec.hosts[0]))
    assert "regression: c" in lines and "new kernel splat" in lines
    assert "b fails on both kernels, as expected on tcg-amd: TCG lacks NRIPS" in lines


def test_a_clean_suite_meets_the_gate_and_says_so(tmp_path: Path) -> None:
    hs = host_suite(tmp_path, {"a": "PASS", "b": "FAIL", "c": "PASS", "d": "SKIP"}, [])
    rec = written(tmp_path, hs)
    assert rec.suite is not None and rec.suite.host("qemu-amd").clean  # type: ignore[union-attr]
    (state,) = gate.evaluate([SuiteRule("all", "tcg-amd")], evidence(rec))
    assert state.met and state.found == "qemu-amd: 4 tests, same 4"
    assert state.asks == "no regression in the all KVM selftest suite on a tcg-amd host"
    # "all" covers a narrower suite; another host kind is not there.
    assert gate.evaluate([SuiteRule("svm", "qemu-amd")], evidence(rec))[0].met
    other = gate.evaluate([SuiteRule("all", "emulated-amd")], evidence(rec))[0]
    assert not other.met and "no run of the all suite" in other.found
    assert all(t.ok for t in rec.hosts[0].tests)
    block = testing.suite_host_lines(rec, rec.hosts[0])
    print("\n".join(block))
    assert all(len(line) <= testing.WIDTH for line in block)
    words = " ".join(" ".join(block).split())
    assert ("KVM selftests (all: 4 tests), each against the same run on the unpatched base: "
            "same 4" in words)


def rerun(tmp: Path, hs: suitejudge.HostSuite, series: str, base: str = "PASS") -> None:
    """Two reruns of ``c`` (the series-only failure) on each kernel: its results there."""
    reran = {suitejudge.Job("qemu-amd", k, n, 0, ("c",), tmp / "rd"): guest({"c": status}, [])
             for n in (2, 3) for k, status in (("base", base), ("series", series))}
    suitejudge.confirm_host(hs, reran, PLAN, CONFIG, tmp / "res", patched=False)


def test_a_failure_that_does_not_fail_again_is_flaky_and_said_so(tmp_path: Path) -> None:
    hs = host_suite(tmp_path, {"a": "PASS", "b": "FAIL", "c": "FAIL", "d": "SKIP"}, [])
    rerun(tmp_path, hs, "PASS")
    c = next(c for c in hs.comparisons if c.test == "c")
    assert c.verdict is suite.Verdict.FLAKY and not hs.regressions
    assert [r.status.value for r in c.series] == ["FAIL", "PASS", "PASS"]
    rec = written(tmp_path, hs)
    data = json.loads((tmp_path / "res" / "suite.json").read_text())
    entry = next(t for t in data["hosts"][0]["tests"] if t["test"] == "c")
    assert [r["rerun"] for r in entry["series"]] == [False, True, True]
    assert data["exit_code"] == 0
    s = rec.suite.host("qemu-amd")  # type: ignore[union-attr]
    assert s is not None and s.clean and [t for t, _ in s.flaky] == ["c"]
    (state,) = gate.evaluate([SuiteRule("all", "tcg-amd")], evidence(rec))
    assert state.met
    words = " ".join(" ".join(testing.suite_host_lines(rec, rec.hosts[0])).split())
    assert ("flaky, not counted as a regression: c: did not fail again: fails on the series "
            "(FAIL: c.c:9: x == 1)") in words
    assert "pass rate 2/2 on the base, 2/2 on the series" in words


def test_a_failure_that_fails_again_stays_a_regression(tmp_path: Path) -> None:
    hs = host_suite(tmp_path, {"a": "PASS", "b": "FAIL", "c": "FAIL", "d": "SKIP"}, [])
    rerun(tmp_path, hs, "FAIL")
    (c,) = hs.regressions
    assert c.test == "c" and c.why.endswith("failed 2 of 2 on the series, passed 2/2 on the base")
    assert written(tmp_path, hs).suite.host("qemu-amd").regressions == ("c",)  # type: ignore


def test_a_rerun_that_did_not_finish_confirms_nothing(tmp_path: Path) -> None:
    hs = host_suite(tmp_path, {"a": "PASS", "b": "FAIL", "c": "FAIL", "d": "SKIP"}, [])
    reran = {suitejudge.Job("qemu-amd", k, 2, 0, ("c",), tmp_path / "rd"):
             GuestRun(output="", infra_error="qemu died") for k in ("base", "series")}
    suitejudge.confirm_host(hs, reran, PLAN, CONFIG, tmp_path / "res", patched=False)
    (c,) = hs.regressions
    assert "not confirmed, its reruns did not finish" in c.why and "qemu died" in c.why


def test_the_suite_rule_is_data() -> None:
    rules = _gate([{"suite": "all", "on": "tcg-amd"}, {"check": "all"}], Path("series.toml"))
    assert rules[0] == SuiteRule("all", "tcg-amd")
    with pytest.raises(KseriesError, match="a suite rule has suite = NAME and on = HOST KIND"):
        _gate([{"suite": "all"}], Path("series.toml"))
