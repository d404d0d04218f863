"""Results on disk: JSON, JUnit XML (validated against a schema), KTAP, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kseries.errors import KseriesError
from kseries.run import ktap, results
from kseries.run.inventory import Host, Kind, QemuSettings, expect
from kseries.run.ktap import Status
from kseries.run.outcome import GuestRun, HostReport, TestOutcome, evaluate, parse_output

XSD = Path(__file__).parent / "data" / "junit-jenkins.xsd"
AMD = Host("qemu-amd", "amd", "qemu", frozenset({"svm"}), qemu=QemuSettings(cpu="EPYC,+svm"))
INTEL = Host("qemu-intel", "intel", "qemu", frozenset(), qemu=QemuSettings(cpu="Skylake"))
LAB = Host("lab", "amd", "ssh", frozenset({"svm", "bus_lock_threshold"}))


def outcome(name: str, actual: Status, *expected: Status, reason: str = "",
            kind: Kind = Kind.SMOKE) -> TestOutcome:
    return TestOutcome(name, kind, actual, reason, expect(*expected, reason="why"))


def report(tmp_path: Path) -> results.RunReport:
    amd = HostReport(AMD, [outcome("kvm_init", Status.PASS, Status.PASS, kind=Kind.CHECK),
                           outcome("smm_test", Status.PASS, Status.PASS),
                           outcome("kvm_buslock_test", Status.SKIP, Status.SKIP,
                                   reason="CPU lacks it", kind=Kind.FEATURE)],
                     accel="tcg", duration=2.5)
    lab = HostReport(LAB, [outcome("kvm_buslock_test", Status.SKIP, Status.PASS,
                                   reason="Requirement not met", kind=Kind.FEATURE)],
                     duration=4.0)
    dead = HostReport(INTEL, [], infra_error="guest kernel panicked: Kernel panic - not syncing",
                      console_tail=["[ 1.0] sysrq: Trigger a crash", "Kernel panic - x"],
                      duration=1.0)
    return results.RunReport([amd, lab, dead], tmp_path / "res", Path("/k/bzImage"), False)


def test_exit_codes() -> None:
    ok = HostReport(AMD, [outcome("a", Status.PASS, Status.PASS)])
    bad = HostReport(AMD, [outcome("a", Status.SKIP, Status.PASS)])
    dead = HostReport(AMD, [], infra_error="hung")
    def code(*hosts: HostReport) -> int:
        return results.RunReport(list(hosts), Path("."), Path("k"), False).exit_code
    assert code(ok) == 0
    assert code(ok, bad) == 2
    assert code(ok, bad, dead) == 3  # an infrastructure failure wins
    assert code(dead) == 3


def test_write_results_directory(tmp_path: Path) -> None:
    rep = report(tmp_path)
    summary = json.loads(results.write(rep).read_text())
    assert summary["schema"] == "kseries-run/1" and summary["exit_code"] == 3
    by = {h["host"]: h for h in summary["hosts"]}
    assert by["qemu-amd"]["verdict"] == "pass"
    assert by["lab"]["verdict"] == "fail"
    assert by["lab"]["tests"][0] == {"name": "kvm_buslock_test", "kind": "feature",
                                     "actual": "SKIP", "reason": "Requirement not met",
                                     "expected": ["PASS"], "expected_reason": "why",
                                     "ok": False, "seconds": 0.0, "ktap": []}
    assert by["qemu-intel"]["verdict"] == "infra"
    assert by["qemu-intel"]["console_tail"][-1] == "Kernel panic - x"
    res = tmp_path / "res"
    assert json.loads((res / "lab" / "result.json").read_text())["verdict"] == "fail"
    # KTAP: one document with a subtest block per host, ok = as expected.
    doc = ktap.parse((res / "results.ktap").read_text(), strict=True)
    assert [(r.name, r.ok) for r in doc.results] == [("qemu-amd", True), ("lab", False),
                                                    ("qemu-intel", False)]
    amd = doc.results[0].subtests
    assert amd[2].status is Status.SKIP and amd[2].reason == "CPU lacks it"
    assert "expected PASS" in doc.results[1].subtests[0].reason
    host_doc = ktap.parse((res / "qemu-intel" / "results.ktap").read_text(), strict=True)
    assert host_doc.results[0].status is Status.ERROR


def test_junit_counts_and_schema(tmp_path: Path) -> None:
    rep = report(tmp_path)
    results.write(rep)
    path = tmp_path / "res" / "junit.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "5", "1", "1", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert suites["lab"].find("testcase/failure") is not None
    err = suites["qemu-intel"].find("testcase/error")
    assert err is not None and err.get("type") == "infrastructure"
    assert "Kernel panic" in (err.text or "")
    assert suites["qemu-amd"].find("testcase/skipped").get("message") == "CPU lacks it"  # type: ignore[union-attr]
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint missing (apt-get install libxml2-utils): schema not checked")
    r = subprocess.run(["xmllint", "--noout", "--schema", str(XSD), str(path)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_rows_show_an_infrastructure_failure_apart(tmp_path: Path) -> None:
    rows = results.rows(report(tmp_path))
    infra = [r for r in rows if r.kind == "infra"]
    assert len(infra) == 1 and infra[0].host == "qemu-intel" and "panicked" in infra[0].reason
    lab = next(r for r in rows if r.host == "lab")
    assert not lab.ok and lab.expected == "PASS" and lab.actual == "SKIP"
    assert "expected PASS (why)" in lab.reason


def test_baseline_round_trip(tmp_path: Path) -> None:
    rep = report(tmp_path)
    results.write(rep)
    base = results.load_baseline(tmp_path / "res")
    assert base.get("qemu-amd", "smm_test") == (Status.PASS, "")
    assert base.get("qemu-amd", "nope") is None
    assert "qemu-intel" in base.broken
    assert results.Baseline.from_report(rep).get("lab", "kvm_buslock_test") == (
        Status.SKIP, "Requirement not met")
    patched = results.RunReport([], tmp_path / "p", Path("k"), True)
    results.write(patched)
    with pytest.raises(KseriesError, match="patched kernel"):
        results.load_baseline(tmp_path / "p")
    with pytest.raises(KseriesError, match="cannot read the baseline"):
        results.load_baseline(tmp_path / "none")


GUEST = """\
KSERIES-FACTS-BEGIN
uname=6.12.117
dev_kvm=yes
virt_line=yes
virt=buslock
kvm_log=[    0.552114] kvm_intel: VMX not supported by CPU 0
kvm_log=[    0.554058] kvm_amd: Nested Virtualization enabled
KSERIES-FACTS-END
KSERIES-KTAP-BEGIN
KTAP version 1
1..2
# smm output
# kseries-time: 1.25
ok 1 smm_test
not ok 2 kvm_buslock_test # exit code 254
KSERIES-KTAP-END
KSERIES-DMESG-BEGIN
[    2.0] WARNING: CPU: 0 PID: 1 at arch/x86/kvm/svm/svm.c:100 bus_lock_exit+0x1/0x2
KSERIES-DMESG-END
KSERIES-DONE
"""


def test_evaluate_guest_output() -> None:
    kinds = {"smm_test": Kind.SMOKE, "kvm_buslock_test": Kind.FEATURE}
    exp = {"kvm_init": expect(Status.PASS), "cpuinfo_virt": expect(Status.PASS),
           "kernel_log": expect(Status.PASS), "smm_test": expect(Status.PASS),
           "kvm_buslock_test": expect(Status.PASS)}
    rep = evaluate(LAB, GuestRun(output=GUEST), list(kinds), kinds, exp)
    got = {t.name: (t.actual, t.ok) for t in rep.tests}
    assert got["kvm_init"] == (Status.PASS, True)
    assert got["cpuinfo_virt"] == (Status.PASS, True)  # buslock listed, and declared
    assert got["kernel_log"] == (Status.FAIL, False)
    assert got["kvm_buslock_test"] == (Status.FAIL, False)
    assert "dev_kvm" not in got  # only the checks asked for are reported
    smm = next(t for t in rep.tests if t.name == "smm_test")
    assert smm.seconds == 1.25 and smm.output == ["smm output"]
    # The same virt line on a host that does not declare the feature is a mismatch.
    rep = evaluate(AMD, GuestRun(output=GUEST), [], {}, {"cpuinfo_virt": expect(Status.PASS)})
    assert rep.tests[0].actual is Status.FAIL and "does not declare" in rep.tests[0].reason
    # Output cut short (the guest died mid-run) is an infrastructure failure.
    cut = GUEST.split("not ok 2")[0]
    rep = evaluate(LAB, GuestRun(output=cut), list(kinds), kinds, exp)
    assert rep.verdict == "infra"
    assert next(t for t in rep.tests if t.name == "kvm_buslock_test").actual is Status.ERROR
    assert parse_output(GUEST).fact("uname") == "6.12.117"
