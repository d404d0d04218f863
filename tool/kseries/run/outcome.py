"""From what a host printed to what it did against what it should do.

Every transport runs kselftest/guest/run-tests and hands back a ``GuestRun``:
its output (facts, KTAP and dmesg between marker lines), the console log and,
if the host itself failed (panic, hang, unreachable), an infrastructure error.
``evaluate`` turns that into a ``HostReport``: one ``TestOutcome`` per kernel
check and selftest, each with the expected and the actual result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kseries.run import ktap
from kseries.run.identity import Seen
from kseries.run.inventory import (
    CHECK_DEV_KVM,
    CHECK_KERNEL_LOG,
    CHECK_KVM_INIT,
    CHECK_VIRT_LINE,
    Expectation,
    Host,
    Kind,
)
from kseries.run.ktap import Status

DONE = "KSERIES-DONE"
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s*")
_KERNEL_TROUBLE = re.compile(r"(WARNING:|BUG:|Oops|general protection fault|Call Trace:)")
_NOT_SUPPORTED = re.compile(r"(not supported|disabled by bios|disabled by BIOS|not available)")
TAIL_LINES = 30
TIME_PREFIX = "kseries-time: "
_NOT_OK = re.compile(r"^\s*not ok \d+ (.+?)\s*$")  # a subtest's own KTAP line
_OK = re.compile(r"^\s*ok \d+ ([^#]+?)\s*$")
# Lines of a selftest's assertion block that are not its message: the process, a
# backtrace, a missing addr2line, run-tests' timing, the next test's KTAP.
_NOT_MESSAGE = re.compile(r"^(pid=|sh: |kseries-time:|\d+\s+0x|\(inlined by\)|not ok |ok |"
                          r"\S+:\d+:\?|Random seed|TAP version|1\.\.)")


@dataclass
class GuestRun:
    """What one transport brought back from one host."""

    output: str  # run-tests' stdout: facts, KTAP, dmesg between markers
    console: str = ""  # the whole console (QEMU's serial port); "" where there is none
    infra_error: str = ""  # why the host failed to run the tests; "" if it did
    kernel_note: str = ""  # which kernel ran, e.g. "the host's own kernel 6.8.0 was tested"
    accel: str = ""  # kvm / tcg for QEMU hosts
    duration: float = 0.0
    logs: dict[str, Path] = field(default_factory=dict)  # name -> file, e.g. "console"
    notes: list[str] = field(default_factory=list)  # e.g. an ssh host's lifecycle timings


@dataclass
class GuestOutput:
    facts: dict[str, list[str]]
    ktap_text: str
    dmesg: str
    done: bool

    def fact(self, key: str) -> str:
        values = self.facts.get(key, [])
        return values[0] if values else ""

    def seen(self) -> Seen:
        """The host's CPU and kernel as run-tests read them (/proc/cpuinfo, uname -r)."""
        return Seen(self.fact("cpu_vendor"), self.fact("cpu_model"),
                    tuple(self.fact("cpu_flags").split()), self.fact("virt"),
                    self.fact("uname"))


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    kind: Kind
    actual: Status
    reason: str
    expected: Expectation
    output: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the test, where the runner measured it

    @property
    def ok(self) -> bool:
        return self.expected.matches(self.actual)


@dataclass
class HostReport:
    host: Host
    tests: list[TestOutcome]
    infra_error: str = ""
    console_tail: list[str] = field(default_factory=list)
    kernel_note: str = ""
    accel: str = ""
    duration: float = 0.0
    logs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seen: Seen = field(default_factory=Seen)
    built_kernel: bool = True  # it booted the run's kernel (not its own)
    evidence: str = "hardware"  # "emulated": a CPU model in QEMU ran it, not silicon
    emulator: dict[str, str] = field(default_factory=dict)  # which QEMU and model
    model: dict[str, int] = field(default_factory=dict)  # the model's own counts

    @property
    def verdict(self) -> str:
        """pass: everything as expected; fail: a test did not; infra: the host failed."""
        if self.infra_error:
            return "infra"
        return "pass" if all(t.ok for t in self.tests) else "fail"


def section(text: str, name: str) -> tuple[str, bool]:
    """The lines between KSERIES-<name>-BEGIN and -END, and whether END was seen."""
    begin, end = f"KSERIES-{name}-BEGIN", f"KSERIES-{name}-END"
    out: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line == begin:
            inside, out = True, []
        elif line == end and inside:
            return "\n".join(out) + "\n", True
        elif inside:
            out.append(line)
    return ("\n".join(out) + "\n" if out else ""), False


def parse_output(text: str) -> GuestOutput:
    facts_text, _ = section(text, "FACTS")
    facts: dict[str, list[str]] = {}
    for line in facts_text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts.setdefault(key, []).append(value)
    ktap_text, _ = section(text, "KTAP")
    dmesg, _ = section(text, "DMESG")
    return GuestOutput(facts, ktap.strip_console_noise(ktap_text), dmesg,
                       any(ln.rstrip("\r") == DONE for ln in text.splitlines()))


def tail(text: str, lines: int = TAIL_LINES) -> list[str]:
    return [ln.rstrip("\r") for ln in text.splitlines()[-lines:]]


def check_results(host: Host, out: GuestOutput) -> dict[str, tuple[Status, str]]:
    """The actual result of each kernel check, with its reason."""
    module = host.module
    lines = [_TIMESTAMP.sub("", ln) for ln in out.facts.get("kvm_log", [])]
    mine = [ln for ln in lines if ln.startswith(f"{module}:")]
    refused = next((ln for ln in mine if _NOT_SUPPORTED.search(ln)), "")
    has_dev = out.fact("dev_kvm") == "yes"
    res: dict[str, tuple[Status, str]] = {}
    if has_dev and not refused:
        res[CHECK_KVM_INIT] = (Status.PASS, mine[0] if mine else f"/dev/kvm exists "
                               f"(no {module} lines left in dmesg)")
        res[CHECK_DEV_KVM] = (Status.PASS, "/dev/kvm exists")
    elif refused:
        res[CHECK_KVM_INIT] = (Status.SKIP, refused)
        res[CHECK_DEV_KVM] = (Status.SKIP if not has_dev else Status.PASS,
                              "no /dev/kvm: " + refused if not has_dev else "/dev/kvm exists")
    else:
        why = f"no /dev/kvm and no {module} message in dmesg"
        res[CHECK_KVM_INIT] = (Status.FAIL, why)
        res[CHECK_DEV_KVM] = (Status.FAIL, why)
    if out.fact("virt_line") == "yes":
        virt = out.fact("virt")
        listed = "buslock" in virt.split()
        # The virt line names the AMD feature; Intel's bus lock detection is not on it.
        if listed == (host.vendor == "amd" and host.has_feature):
            res[CHECK_VIRT_LINE] = (Status.PASS, f"virt: {virt}" if virt else "virt: (empty)")
        elif listed:
            res[CHECK_VIRT_LINE] = (Status.FAIL, f"virt: {virt}: lists buslock, but {host.name} "
                                    "does not declare it")
        else:
            res[CHECK_VIRT_LINE] = (Status.FAIL, f"virt: {virt}: no buslock, but {host.name} "
                                    "declares the feature")
    else:
        res[CHECK_VIRT_LINE] = (Status.FAIL, "no virt line in /proc/cpuinfo")
    trouble = [ln for ln in out.dmesg.splitlines() if _KERNEL_TROUBLE.search(ln)]
    if trouble:
        res[CHECK_KERNEL_LOG] = (Status.FAIL, _TIMESTAMP.sub("", trouble[0]).strip())
    else:
        res[CHECK_KERNEL_LOG] = (Status.PASS, "no WARNING/BUG/Oops in dmesg")
    return res


def evaluate(
    host: Host,
    run: GuestRun,
    tests: list[str],
    kinds: dict[str, Kind],
    expectations: dict[str, Expectation],
) -> HostReport:
    """Compare what ``host`` did with ``expectations`` (keyed by check or test name).

    Only the checks present in ``expectations`` are reported (the virt line only
    when the kernel carries the series).
    """
    report = HostReport(host, [], run.infra_error, tail(run.console or run.output),
                        run.kernel_note, run.accel, run.duration, dict(run.logs),
                        list(run.notes))
    out = parse_output(run.output)
    report.seen = out.seen()
    if not run.infra_error and not out.done:
        report.infra_error = "the host stopped before the tests finished (no KSERIES-DONE)"
    if not out.facts and report.infra_error:
        return report
    for name, (status, reason) in check_results(host, out).items():
        if name in expectations:
            report.tests.append(TestOutcome(name, Kind.CHECK, status, reason, expectations[name]))
    doc = ktap.parse(out.ktap_text)
    found = doc.by_name()
    for name in tests:
        r = found.get(name)
        if r is None:
            status, reason, diag = Status.ERROR, "no result: the run stopped before it", []
        else:
            status, reason, diag = r.status, r.reason, r.diagnostics
            if status is Status.FAIL and not reason:
                reason = "failed"
            detail = _failure_detail(diag) if status is Status.FAIL else ""
            if detail:
                reason = f"{reason}: {detail}"
            elif status is Status.PASS and not reason and kinds[name] is Kind.FEATURE:
                reason = _passed_levels(diag)
        seconds, diag = _split_time(diag)
        report.tests.append(TestOutcome(name, kinds[name], status, reason, expectations[name],
                                        diag, seconds))
    return report


def _split_time(diagnostics: list[str]) -> tuple[float, list[str]]:
    """run-tests' "kseries-time: SECONDS" line, taken out of the test's output."""
    seconds, rest = 0.0, []
    for line in diagnostics:
        if line.startswith(TIME_PREFIX):
            try:
                seconds = float(line.removeprefix(TIME_PREFIX))
                continue
            except ValueError:
                pass
        rest.append(line)
    return seconds, rest


def _failure_detail(diagnostics: list[str]) -> str:
    """The assertion of a failed KVM selftest (where, and its message), or its first
    failed subtest."""
    for i, line in enumerate(diagnostics):
        if "Test Assertion Failure" in line:
            block = [ln.strip() for ln in diagnostics[i + 1:i + 12]]
            said = [ln for ln in block if ln and not _NOT_MESSAGE.match(ln)]
            return ": ".join(said[:1] + said[-1:] if len(said) > 1 else said) or line.strip()
        if "Assertion" in line or "TEST_ASSERT" in line or "failed" in line.lower():
            return line.strip()
    return next((m.group(1) for m in map(_NOT_OK.match, diagnostics) if m), "")


def _passed_levels(diagnostics: list[str]) -> str:
    """What a passing test said of its parts ("L1: 100 bus lock exits; L2: ...")."""
    return "; ".join(m.group(1) for m in map(_OK.match, diagnostics) if m)
