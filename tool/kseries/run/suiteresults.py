"""A suite run's results on disk, for people, CI and `kseries submit`.

In the results directory::

    suite.json            the suite, its rounds, and per host: the counts, each
                          test's verdict with its results on both kernels (the
                          reruns of a series-only failure marked "rerun"; a
                          regression with its KTAP lines and the kernel log
                          around it), and the splats sorted like the tests
    suite.ktap            one KTAP document: per host, a test is "ok" unless
                          it regressed (the verdict and why as its reason)
    summary.json, junit.xml, results.ktap, <host>/
                          the series' first round as any `kseries run` writes
                          it, each test expected as on the unpatched base (so
                          submit reads it as a run of the tip)
    baseline/             the same of the unpatched base's first round
    base/, series/        every round's guests: console, results, KTAP, dmesg
                          (<host>/round<N>/shard<M>/; a rerun's in <host>/rerun<N>/)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from kseries.run import ktap, results, splats
from kseries.run.identity import SeriesId
from kseries.run.inventory import CHECK_KERNEL_LOG, Kind, expect
from kseries.run.ktap import Status
from kseries.run.outcome import HostReport, TestOutcome
from kseries.run.records import SUITE_FILE
from kseries.run.suite import Comparison, Result, counts
from kseries.run.suitejudge import BASE, SERIES, HostSuite
from kseries.run.suiterun import SuiteReport

SCHEMA = "kseries-suite/1"
AROUND = 40  # kernel log lines kept around a regression


def kernel_log_around(hs: HostSuite, kernel: str, test: str) -> list[str]:
    """The kernel log while ``test`` ran, in the first round where it did not pass."""
    for n, shards in enumerate(hs.shard_logs[kernel]):
        got = next((t for t in hs.reports[kernel][n].tests if t.name == test), None)
        if got is not None and got.actual is Status.PASS:
            continue
        for group, log in shards:
            if test in group:
                return window(log, test)
    return []


def window(log: str, test: str, limit: int = AROUND) -> list[str]:
    """The kernel log lines between ``test``'s start and end markers (the last ``limit``;
    to the end of the log if it never ended: a guest that died during it)."""
    lines = log.splitlines()
    start = next((i for i, ln in enumerate(lines)
                  if (m := splats.MARKER.search(ln)) and m.groups() == ("start", test)), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(lines))
                if (m := splats.MARKER.search(lines[i])) and m.group(1) == "end"), len(lines) - 1)
    return lines[start:end + 1][-limit:]


def _result(r: Result) -> dict[str, Any]:
    return {"status": r.status.value, "reason": r.reason, "seconds": r.seconds,
            "rerun": r.rerun}


def comparison_dict(hs: HostSuite, c: Comparison) -> dict[str, Any]:
    d: dict[str, Any] = {
        "test": c.test, "verdict": c.verdict.value, "why": c.why,
        "known_failure": ({"reason": c.known.reason, "line": c.known.line}
                          if c.known else None),
        "base": [_result(r) for r in c.base], "series": [_result(r) for r in c.series],
        "splats": c.splats,
    }
    if c.fails_run or c.splats:
        bad = next((r for r in c.series if r.status is not Status.PASS), c.series[0])
        d["ktap"] = list(bad.output)
        d["kernel_log"] = kernel_log_around(hs, SERIES, c.test)
    return d


def _splat(s: splats.Splat) -> dict[str, Any]:
    return {"identity": s.identity, "kind": s.kind, "test": s.test, "where": s.where,
            "lines": list(s.lines)}


def host_dict(hs: HostSuite) -> dict[str, Any]:
    sp = hs.splats
    return {
        "host": hs.host.name, "kinds": list(hs.kinds), "infra": hs.infra,
        "counts": counts(hs.comparisons),
        "regressions": [c.test for c in hs.regressions],
        "splat_regressions": [f"{s.identity} ({s.where})" for s in sp.new],
        "tests": [comparison_dict(hs, c) for c in hs.comparisons],
        "splats": {"new": [_splat(s) for s in sp.new], "same": [_splat(s) for s in sp.same],
                   "gone": [_splat(s) for s in sp.gone],
                   "allowed": [{**_splat(s), "reason": why} for s, why in sp.allowed]},
        "duration_s": {k: round(sum(r.duration for r in rs), 1)
                       for k, rs in hs.reports.items()},
    }


def suite_dict(report: SuiteReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "suite": report.name, "tests": report.tests, "rounds": report.rounds,
        "reruns": report.reruns,
        "accel": report.accel, "jobs": report.jobs, "seconds": round(report.seconds, 1),
        "exit_code": report.exit_code, "notes": report.notes,
        "hosts": [host_dict(h) for h in report.hosts],
    }


def suite_ktap(report: SuiteReport) -> str:
    tops = []
    for hs in report.hosts:
        subs = [ktap.TestResult(0, c.test, not c.fails_run and not c.splats, "",
                                f"{c.verdict.value}: {c.why}"
                                + (f"; new splat: {'; '.join(c.splats)}" if c.splats else ""))
                for c in hs.comparisons]
        subs += [ktap.TestResult(0, f"splat {s.identity}", False, "", s.where)
                 for s in hs.splats.new if s.test not in report.tests]
        infra = "; ".join(hs.infra)
        ok = not infra and all(r.ok for r in subs)
        tops.append(ktap.TestResult(0, hs.host.name, ok, "ERROR" if infra else "", infra,
                                    subtests=subs))
    return ktap.emit(tops)


def judged(hs: HostSuite, kernel: str) -> HostReport:
    """``kernel``'s first round, each test expected as the comparison found it."""
    first = hs.reports[kernel][0]
    by_test = {c.test: c for c in hs.comparisons}
    tests: list[TestOutcome] = []
    for t in first.tests:
        c = by_test.get(t.name)
        if t.kind is Kind.CHECK and t.name == CHECK_KERNEL_LOG:
            new = list(hs.splats.new) if kernel == SERIES else []
            wanted = {Status.PASS} if new else {t.actual}
            why = ("no splat the unpatched base's kernel does not print" if not new else
                   f"new splat: {new[0].identity} ({new[0].where})")
            t = dataclasses.replace(t, expected=expect(*wanted, reason=why))
        elif c is not None and kernel == SERIES:
            wanted = {r.status for r in c.base} if c.fails_run else {t.actual}
            t = dataclasses.replace(t, expected=expect(
                *wanted, reason=f"as on the unpatched base: {c.verdict.value}: {c.why}"))
        elif c is not None:
            t = dataclasses.replace(t, expected=expect(t.actual, reason="the baseline"))
        tests.append(t)
    return dataclasses.replace(first, tests=tests)


def write(report: SuiteReport, ids: dict[str, SeriesId], kernels: dict[str, Path]) -> Path:
    """Write the suite's files and both kernels' run summaries; returns suite.json's path."""
    d = report.out_dir
    d.mkdir(parents=True, exist_ok=True)
    for kernel, where, patched in ((BASE, d / "baseline", False), (SERIES, d, True)):
        run = results.RunReport([judged(h, kernel) for h in report.hosts], where,
                                kernels[kernel], patched and ids[kernel].patched,
                                "suite: the same rounds on the unpatched base"
                                if kernel == SERIES else "",
                                [f"suite {report.name}: round 1 of {report.rounds}"],
                                ids[kernel])
        results.write(run)
    (d / "suite.ktap").write_text(suite_ktap(report))
    path = d / SUITE_FILE
    path.write_text(json.dumps(suite_dict(report), indent=2) + "\n")
    return path
