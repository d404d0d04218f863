"""The series' testing rules (the manifest's ``[[gate]]``) against what ran.

``evaluate`` gives one ``State`` per rule: what it asks, whether the records
meet it, and what they show. The same rules, plus ``WANTED`` (what the kvm-x86
maintainers ask of any series: the check, and the feature test on an AMD host
with the Bus Lock Threshold and on an Intel host with bus lock detection), make
the cover letter's Not tested list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.check import verdict
from kseries.check.report import PASS, WARN
from kseries.errors import KseriesError
from kseries.render.manifest import ALL_CHECKS, CheckRule, GateRule, HostRule, SuiteRule
from kseries.run.inventory import CAPABILITIES
from kseries.submit.evidence import Evidence

VENDOR_NAME = {"amd": "AMD", "intel": "Intel"}
CAPABILITY_NAME = {
    "bus_lock_threshold": "the Bus Lock Threshold",
    "bus_lock_detect": "bus lock detection",
    "svm": "SVM",
    "vmx": "VMX",
    "nested": "nested virtualization",
}
WANTED: tuple[GateRule, ...] = (
    CheckRule(ALL_CHECKS),
    HostRule("amd", "bus_lock_threshold", "PASS"),
    HostRule("intel", "bus_lock_detect", "PASS"),
)


@dataclass(frozen=True)
class State:
    rule: GateRule
    number: int  # its place among the manifest's [[gate]] entries; 0 if not one of them
    met: bool
    asks: str  # what the rule asks, in words
    found: str  # what the records show

    @property
    def line(self) -> str:
        return f"{self.asks}: {self.found}"


def validate(rules: Sequence[GateRule], manifest: Path | None) -> None:
    for n, rule in enumerate(rules, start=1):
        if isinstance(rule, HostRule) and rule.needs not in CAPABILITIES:
            raise KseriesError(f"{manifest or 'the manifest'}: [[gate]] {n}: needs "
                               f"{rule.needs!r} is not a capability hosts declare",
                               hint=f"one of {', '.join(CAPABILITIES)}")


def asks(rule: GateRule) -> str:
    if isinstance(rule, SuiteRule):
        return f"no regression in the {rule.suite} KVM selftest suite on a {rule.on} host"
    if isinstance(rule, CheckRule):
        if rule.check == ALL_CHECKS:
            return "kseries check of the tip passed"
        return f"kseries check's {rule.check} check passed"
    what = rule.test if rule.result == "PASS" else f"{rule.test} giving {rule.result}"
    cap = CAPABILITY_NAME.get(rule.needs, rule.needs)
    vendor = VENDOR_NAME.get(rule.vendor, rule.vendor)
    if rule.evidence == "emulated":
        return f"{what} on an emulated {vendor} host with {cap} (kseries' CPU model)"
    return f"{what} on an {vendor} host with {cap}"


def evaluate(rules: Sequence[GateRule], evidence: Evidence) -> tuple[State, ...]:
    """The state of each rule; ``number`` counts from 1 in the order given."""
    out = []
    for n, rule in enumerate(rules, start=1):
        if isinstance(rule, CheckRule):
            met, found = _check(rule, evidence)
        elif isinstance(rule, SuiteRule):
            met, found = _suite(rule, evidence)
        else:
            met, found = _hosts(rule, evidence)
        out.append(State(rule, n, met, asks(rule), found))
    return tuple(out)


def wanted(gate: Sequence[State], evidence: Evidence) -> tuple[State, ...]:
    """The gate's rules, then those of ``WANTED`` that the gate does not have."""
    extra = [r for r in WANTED if r not in {s.rule for s in gate}]
    return (*gate, *(State(s.rule, 0, s.met, s.asks, s.found)
                     for s in evaluate(extra, evidence)))


def _check(rule: CheckRule, evidence: Evidence) -> tuple[bool, str]:
    rec = evidence.check
    if rec is None:
        return False, f"the tip {evidence.tip[:12]} has never been checked"
    if rule.check == ALL_CHECKS:
        if rec.status == verdict.PASS:
            return True, "the last check passed"
        return False, f"the last check did not pass ({rec.status})"
    status = rec.checks.get(rule.check)
    if status is None:
        return False, f"the last check did not run {rule.check}"
    if status in (PASS, WARN):
        return True, f"{rule.check}: {status}"
    return False, f"{rule.check}: {status}"


def _hosts(rule: HostRule, evidence: Evidence) -> tuple[bool, str]:
    alike = [(run, h) for run, h in evidence.hosts()
             if h.vendor == rule.vendor and rule.needs in h.supports]
    kind = [(run, h) for run, h in alike if h.evidence == rule.evidence]
    if not kind:
        if alike:
            other = "hardware" if rule.evidence == "emulated" else "emulated"
            return False, f"no such host in the results, only {other} ones"
        return False, "no such host in the results"
    good, bad = [], []
    for _, h in kind:
        t = h.test(rule.test)
        if h.infra_error:
            bad.append(f"{h.name} failed to run ({h.infra_error})")
        elif not h.built_kernel:
            bad.append(f"{h.name} ran its own kernel, not the series'")
        elif t is None:
            bad.append(f"{h.name} did not run {rule.test}")
        elif t.actual == rule.result:
            good.append(f"{h.name}: {t.actual}")
        else:
            bad.append(f"{h.name}: {t.actual}" + (f" ({t.reason})" if t.reason else ""))
    if good:
        return True, "; ".join(good)
    return False, "; ".join(bad)


def _suite(rule: SuiteRule, evidence: Evidence) -> tuple[bool, str]:
    """The suite runs of the tip on a host of that kind (or name), against the base."""
    good, bad = [], []
    for run in evidence.runs:
        if run.suite is None or not run.suite.covers(rule.suite):
            continue
        for h in run.suite.hosts:
            if rule.on not in h.kinds:
                continue
            counts = ", ".join(f"{k} {v}" for k, v in h.counts.items() if v)
            if h.clean:
                good.append(f"{h.name}: {run.suite.tests} tests, {counts}")
            elif h.infra:
                bad.append(f"{h.name} did not finish ({h.infra[0]})")
            else:
                bad.append(f"{h.name}: regression in "
                           + ", ".join([*h.regressions, *h.splat_regressions]))
    if good and not bad:
        return True, "; ".join(good)
    if not good and not bad:
        return False, f"no run of the {rule.suite} suite on such a host in the results"
    return False, "; ".join(bad)
