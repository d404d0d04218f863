"""A run's results on disk: per-host JSON, KTAP and logs, one JUnit XML file,
a summary JSON, the rows of the console table, and the exit code.

Layout of the results directory::

    summary.json          what ran (the series, its tip and base, the kernel's
                          sha256) and every host: its CPU as seen, how it ran,
                          every check and test, expected vs actual, KTAP lines
    junit.xml             one <testsuite> per host (Jenkins, GitLab)
    results.ktap          one KTAP document, a subtest block per host
    <host>/result.json    that host alone
    <host>/results.ktap   that host's checks and tests, ok = as expected
    <host>/guest.ktap     the raw KTAP the host printed
    <host>/dmesg.txt      the host's kernel log
    <host>/console.log    the serial console (QEMU hosts)

Exit codes: 0 every host did what was expected, 2 a test did not,
3 a host failed (panic, hang, unreachable) -- this one wins over 2.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run import ktap
from kseries.run.identity import SeriesId
from kseries.run.ktap import Status
from kseries.run.outcome import HostReport, TestOutcome

EXIT_PASS, EXIT_TEST_FAILURE, EXIT_INFRA = 0, 2, 3
SCHEMA = "kseries-run/1"


@dataclass
class RunReport:
    hosts: list[HostReport]
    out_dir: Path
    kernel: Path
    patched: bool
    baseline: str = ""  # where the baseline came from, "" if none
    notes: list[str] = field(default_factory=list)
    series: SeriesId = field(default_factory=SeriesId)

    @property
    def exit_code(self) -> int:
        verdicts = {h.verdict for h in self.hosts}
        if "infra" in verdicts:
            return EXIT_INFRA
        if "fail" in verdicts:
            return EXIT_TEST_FAILURE
        return EXIT_PASS


@dataclass(frozen=True)
class Row:
    host: str
    test: str
    kind: str
    expected: str
    actual: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class Baseline:
    """The unpatched base's results: host -> test -> (status, reason)."""

    source: str
    results: dict[str, dict[str, tuple[Status, str]]]
    broken: frozenset[str] = frozenset()  # hosts whose baseline run failed as infrastructure

    def get(self, host: str, test: str) -> tuple[Status, str] | None:
        return self.results.get(host, {}).get(test)

    @classmethod
    def from_report(cls, report: RunReport) -> Baseline:
        res = {h.host.name: {t.name: (t.actual, t.reason) for t in h.tests} for h in report.hosts}
        broken = frozenset(h.host.name for h in report.hosts if h.verdict == "infra")
        return cls(f"run of {report.kernel}", res, broken)


def rows(report: RunReport) -> list[Row]:
    """The host x test table, an infrastructure failure as one row of its own."""
    out = []
    for h in report.hosts:
        if h.infra_error:
            out.append(Row(h.host.name, "(host)", "infra", "run", "INFRA", False, h.infra_error))
        for t in h.tests:
            out.append(Row(h.host.name, t.name, t.kind.value, t.expected.label, t.actual.value,
                           t.ok, t.reason if t.ok else _mismatch(t)))
    return out


def _mismatch(t: TestOutcome) -> str:
    why = f"expected {t.expected.label}"
    if t.expected.reason:
        why += f" ({t.expected.reason})"
    return f"{t.reason}; {why}" if t.reason else why


def host_dict(h: HostReport) -> dict[str, Any]:
    return {
        "host": h.host.name, "vendor": h.host.vendor, "transport": h.host.transport,
        "description": h.host.describe(), "supports": sorted(h.host.supports),
        "verdict": h.verdict, "infra_error": h.infra_error, "accel": h.accel,
        "kernel": h.kernel_note, "built_kernel": h.built_kernel, "seen": h.seen.to_json(),
        "duration_s": round(h.duration, 3), "notes": h.notes,
        "evidence": h.evidence, "emulator": h.emulator, "model": h.model,
        "console_tail": h.console_tail if h.infra_error else [],
        "logs": {k: str(v) for k, v in h.logs.items()},
        "tests": [
            {"name": t.name, "kind": t.kind.value, "actual": t.actual.value, "reason": t.reason,
             "expected": sorted(s.value for s in t.expected.statuses),
             "expected_reason": t.expected.reason, "ok": t.ok, "seconds": t.seconds,
             "ktap": t.output}
            for t in h.tests
        ],
    }


def summary_dict(report: RunReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "series": report.series.to_json(),
        "kernel": str(report.kernel), "patched": report.patched,
        "baseline": report.baseline, "exit_code": report.exit_code, "notes": report.notes,
        "hosts": [host_dict(h) for h in report.hosts],
    }


def host_ktap(h: HostReport) -> list[ktap.TestResult]:
    """The host's checks and tests as KTAP results: ok means "did what was expected"."""
    out = []
    for t in h.tests:
        if t.ok:
            directive = "SKIP" if t.actual is Status.SKIP else ""
            out.append(ktap.TestResult(0, t.name, True, directive, t.reason))
        else:
            out.append(ktap.TestResult(0, t.name, False, "", _mismatch(t)))
    if h.infra_error:
        tail = [f"console: {ln}" for ln in h.console_tail]
        out.append(ktap.TestResult(0, "host", False, "ERROR", h.infra_error, tail))
    return out


def junit(report: RunReport) -> ET.Element:
    root = ET.Element("testsuites", name="kseries run")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for h in report.hosts:
        suite = ET.SubElement(root, "testsuite", name=h.host.name,
                              hostname=h.host.describe())
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for t in h.tests:
            case = ET.SubElement(suite, "testcase", classname=f"kseries.{h.host.name}",
                                 name=t.name, time=f"{t.seconds:.3f}")
            counts["tests"] += 1
            if not t.ok:
                ET.SubElement(case, "failure", message=_mismatch(t)[:500],
                              type=f"expected-{t.expected.label}-got-{t.actual.value}").text = (
                    "\n".join(t.output))
                counts["failures"] += 1
            elif t.actual is Status.SKIP:
                ET.SubElement(case, "skipped", message=t.reason[:500])
                counts["skipped"] += 1
        if h.infra_error:
            case = ET.SubElement(suite, "testcase", classname=f"kseries.{h.host.name}",
                                 name="host", time=f"{h.duration:.3f}")
            ET.SubElement(case, "error", message=h.infra_error[:500],
                          type="infrastructure").text = "\n".join(h.console_tail)
            counts["tests"] += 1
            counts["errors"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{h.duration:.3f}")
        props = ET.Element("properties")
        for name, value in (("kernel", h.kernel_note), ("accel", h.accel),
                            ("transport", h.host.transport)):
            ET.SubElement(props, "property", name=name, value=value)
        suite.insert(0, props)
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{sum(h.duration for h in report.hosts):.3f}")
    return root


def write(report: RunReport) -> Path:
    """Write the whole results directory; returns the summary's path."""
    d = report.out_dir
    d.mkdir(parents=True, exist_ok=True)
    tops = []
    for h in report.hosts:
        hd = d / h.host.name
        hd.mkdir(parents=True, exist_ok=True)
        (hd / "result.json").write_text(json.dumps(host_dict(h), indent=2) + "\n")
        results = host_ktap(h)
        (hd / "results.ktap").write_text(ktap.emit(results))
        ok = not h.infra_error and all(r.ok for r in results)
        reason = h.infra_error or ("" if ok else "not as expected")
        tops.append(ktap.TestResult(0, h.host.name, ok, "ERROR" if h.infra_error else "",
                                    reason, subtests=results))
    (d / "results.ktap").write_text(ktap.emit(tops))
    tree = ET.ElementTree(junit(report))
    ET.indent(tree)
    tree.write(d / "junit.xml", encoding="utf-8", xml_declaration=True)
    summary = d / "summary.json"
    summary.write_text(json.dumps(summary_dict(report), indent=2) + "\n")
    return summary


def load_baseline(path: Path) -> Baseline:
    """A baseline from an earlier run's results directory (or its summary.json)."""
    summary = path / "summary.json" if path.is_dir() else path
    try:
        data = json.loads(summary.read_text())
    except (OSError, ValueError) as exc:
        raise KseriesError(f"{summary}: cannot read the baseline ({exc})",
                           hint="run the unpatched base first: kseries run ... -o DIR") from exc
    if data.get("schema") != SCHEMA:
        raise KseriesError(f"{summary}: not a kseries run summary")
    if data.get("patched"):
        raise KseriesError(f"{summary}: that run was of a patched kernel",
                           hint="a baseline is the same run on the unpatched base's kernel")
    res: dict[str, dict[str, tuple[Status, str]]] = {}
    broken = set()
    for h in data.get("hosts", []):
        res[h["host"]] = {t["name"]: (Status(t["actual"]), t.get("reason", ""))
                          for t in h.get("tests", [])}
        if h.get("verdict") == "infra":
            broken.add(h["host"])
    return Baseline(str(summary), res, frozenset(broken))
