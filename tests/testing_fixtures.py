"""FIXTURES for the Testing done block and the gate: lab results that cannot be made here.

No machine here has a CPU with the Bus Lock Threshold or Intel's bus lock
detection, and QEMU emulates neither. ``lab_results`` therefore writes the
results of a lab run on two such hosts: the output each host's run-tests would
print (facts from /proc/cpuinfo, KTAP with kvm_buslock_test's own lines) is
written out here, and everything after it is kseries' own code: ``evaluate``
judges it against what the hosts declare, ``results.write`` writes the
directory exactly as ``kseries run -o DIR`` does. Only the printed output is a
fixture.
"""

from __future__ import annotations

from pathlib import Path

from kseries.base.bases import Base
from kseries.run import results
from kseries.run.identity import SeriesId
from kseries.run.inventory import (
    Host,
    Kind,
    QemuSettings,
    SshSettings,
    TestPlan,
    check_expectations,
    test_expectation,
)
from kseries.run.outcome import GuestRun, HostReport, evaluate

PLAN = TestPlan(smoke=(), feature="kvm_buslock_test")
LAB_AMD = Host("lab-epyc-9005", "amd", "ssh",
               frozenset({"svm", "nested", "bus_lock_threshold"}),
               ssh=SshSettings("epyc-9005.lab.example.org", install_hook=("kexec-kernel",)))
# The emulated host's results have the same shape (its own test runs the real
# emulator: tests/test_emulator.py); here it only stands beside the lab hosts.
EMULATED_AMD = Host("qemu-amd-blt", "amd", "qemu",
                    frozenset({"svm", "nested", "bus_lock_threshold"}),
                    qemu=QemuSettings("EPYC,+svm,+npt,+bus-lock-threshold",
                                      emulator="bus-lock-threshold"))
LAB_INTEL = Host("lab-xeon-spr", "intel", "ssh",
                 frozenset({"vmx", "nested", "bus_lock_detect"}),
                 ssh=SshSettings("xeon-spr.lab.example.org", install_hook=("kexec-kernel",)))

# What run-tests prints on each (FIXTURE: hardware that is not here).
_OUTPUT = """\
KSERIES-FACTS-BEGIN
uname=6.12.117
dev_kvm=yes
cpu_vendor={vendor}
cpu_model={model}
cpu_flags=fpu vme de pse tsc msr pae {ext} {flag}
virt_line=yes
virt={virt}
kvm_log=[    1.000000] {module}: {module_line}
KSERIES-FACTS-END
KSERIES-KTAP-BEGIN
KTAP version 1
1..1
# TAP version 13
# 1..2
# # {like} bus lock exits, nested guest: {nested}
# ok 1 L1: 100 bus lock exits
# ok 2 L2: 100 bus lock exits
# # Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0
# kseries-time: 0.52
ok 1 kvm_buslock_test
KSERIES-KTAP-END
KSERIES-DMESG-BEGIN
[    1.000000] {module}: {module_line}
KSERIES-DMESG-END
KSERIES-DONE
"""
OUTPUTS = {
    LAB_AMD.name: _OUTPUT.format(vendor="AuthenticAMD", model="AMD EPYC 9555 64-Core Processor",
                                 ext="svm", flag="split_lock_detect", virt="buslock",
                                 module="kvm_amd", module_line="Nested Virtualization enabled",
                                 like="Fault-like (AMD)", nested="SVM"),
    LAB_INTEL.name: _OUTPUT.format(vendor="GenuineIntel",
                                   model="Intel(R) Xeon(R) Platinum 8480+",
                                   ext="vmx", flag="split_lock_detect bus_lock_detect", virt="",
                                   module="kvm_intel", module_line="nested enabled",
                                   like="Trap-like (Intel)", nested="VMX"),
}
OUTPUTS[EMULATED_AMD.name] = OUTPUTS[LAB_AMD.name].replace(
    "AMD EPYC 9555 64-Core Processor", "AMD EPYC Processor")


def host_report(host: Host) -> HostReport:
    exp = check_expectations(host, patched=True)
    exp[PLAN.feature] = test_expectation(host, PLAN, PLAN.feature)
    run = GuestRun(output=OUTPUTS[host.name], duration=1.0,
                   kernel_note="built kernel bzImage installed by the hook; "
                               "the host runs 6.12.117")
    report = evaluate(host, run, [PLAN.feature], {PLAN.feature: Kind.FEATURE}, exp)
    if host.emulated_feature:
        report.evidence = "emulated"
        report.emulator = {"qemu": "1:10.0.13+ds-0+deb13u1", "patch": "FIXTURE",
                           "model": "kseries Bus Lock Threshold model"}
        report.model = {"exits": 200, "let_through": 200}
    return report


def lab_results(out: Path, base: Base, tip: str,
                hosts: tuple[Host, ...] = (LAB_AMD, LAB_INTEL, EMULATED_AMD),
                *, base_commit: str = "") -> Path:
    """FIXTURE: write ``out`` as `kseries run -o out` would on lab ``hosts`` for ``tip``."""
    sid = SeriesId("buslock", 2, tip, True, base.label, base_commit or base.commit,
                   base.describe, "f" * 64, "FIXTURE: a lab's kseries build record")
    report = results.RunReport([host_report(h) for h in hosts], out, Path("/lab/bzImage"),
                               True, "", [], sid)
    results.write(report)
    return out


def suite_results(out: Path, base: Base, tip: str) -> Path:
    """FIXTURE: write ``out`` as `kseries run --suite svm -o out` would on the emulated
    AMD host (a TCG AMD host) for ``tip``: the guests' output is made up (both kernels
    alike, one known failure); the comparison and the files are kseries' own."""
    from kseries.run import ktap, suite, suitejudge, suiteresults, suiterun
    from kseries.run.inventory import QemuSettings

    amd = Host("qemu-amd-blt", "amd", "qemu",
               frozenset({"svm", "nested", "bus_lock_threshold"}),
               qemu=QemuSettings(cpu="EPYC,+svm,+npt,+bus-lock-threshold",
                                 emulator="bus-lock-threshold"))
    names = ["svm_vmcall_test", "svm_nested_soft_inject_test"]
    doc = ktap.emit([ktap.TestResult(0, names[0], True),
                     ktap.TestResult(0, names[1], False, "", "exit code 254",
                                     ["==== Test Assertion Failure ====", "  soft.c:1: x"])])
    text = ("KSERIES-FACTS-BEGIN\ndev_kvm=yes\nKSERIES-FACTS-END\nKSERIES-KTAP-BEGIN\n"
            f"{doc}KSERIES-KTAP-END\nKSERIES-DMESG-BEGIN\nKSERIES-DMESG-END\nKSERIES-DONE\n")
    config = suite.parse_config({"known_failures": {"tcg-amd": {names[1]: {
        "reason": "TCG does not emulate NRIPS"}}}}, out / "hosts.toml", ())
    runs = {(k, 1): [GuestRun(output=text, accel="tcg")] for k in ("base", "series")}
    hs = suitejudge.judge_host(amd, suitejudge.host_kinds(amd, "tcg"), names, runs, [names],
                               PLAN, config, out, patched=False)
    report = suiterun.SuiteReport("svm", names, 1, [hs], out, "tcg", 1.0, 1)
    sid = SeriesId("buslock", 2, tip, True, base.label, base.commit, base.describe, "f" * 64,
                   "FIXTURE: a suite run's record")
    suiteresults.write(report, {"base": SeriesId(patched=False), "series": sid},
                       {"base": Path("/b/bzImage"), "series": Path("/s/bzImage")})
    return out
