"""A run's results read back from disk (summary.json), for those who report on them.

``kseries submit --results DIR`` reads the results of runs made here or in a
lab: what was run (``SeriesId``), and for each host its CPU as seen, how it
ran, and each check and test with its KTAP lines. A suite run (``kseries run
--suite``) adds its comparison of the two kernels (suite.json beside the
summary): ``SuiteRecord``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run.identity import Seen, SeriesId
from kseries.run.results import SCHEMA


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    kind: str  # check / smoke / feature
    actual: str  # PASS / FAIL / SKIP / ERROR
    reason: str
    expected: tuple[str, ...]
    expected_reason: str
    ok: bool
    ktap: tuple[str, ...]  # the test's own output lines, e.g. "ok 1 L1: 100 bus lock exits"

    @property
    def against_baseline(self) -> bool:
        """Its expectation came from the same run on the unpatched base."""
        return self.expected_reason.startswith("as on the unpatched base")


@dataclass(frozen=True)
class HostRecord:
    name: str
    vendor: str  # as the inventory declares it
    transport: str  # qemu / ssh / local
    accel: str  # kvm / tcg for qemu hosts
    description: str
    supports: frozenset[str]  # capabilities the inventory declares
    verdict: str  # pass / fail / infra
    infra_error: str
    built_kernel: bool  # booted the run's kernel, not its own
    kernel_note: str
    seen: Seen
    tests: tuple[TestRecord, ...]
    evidence: str = "hardware"  # "emulated": a CPU model in QEMU, not silicon
    emulator: dict[str, str] = field(default_factory=dict)  # qemu version, model
    model: dict[str, int] = field(default_factory=dict)  # the model's own counts

    def test(self, name: str) -> TestRecord | None:
        return next((t for t in self.tests if t.name == name), None)


@dataclass(frozen=True)
class SuiteHostRecord:
    name: str
    kinds: tuple[str, ...]  # e.g. ("tcg-amd", "qemu-amd"): its kind, then its name
    counts: dict[str, int]  # verdict -> tests, e.g. {"same": 80, "regression": 1, ...}
    regressions: tuple[str, ...]  # the tests
    splat_regressions: tuple[str, ...]  # "identity (where)"
    infra: tuple[str, ...]  # the runs that failed as infrastructure
    known: tuple[tuple[str, str], ...]  # (test, reason) of the known failures it showed
    flaky: tuple[tuple[str, str], ...] = ()  # (test, why) of the tests found flaky

    @property
    def clean(self) -> bool:
        return not (self.regressions or self.splat_regressions or self.infra)


@dataclass(frozen=True)
class SuiteRecord:
    name: str  # "all", "svm", or what --suite was given
    tests: int
    rounds: int
    hosts: tuple[SuiteHostRecord, ...]

    def covers(self, suite: str) -> bool:
        """Whether this run ran ``suite``: the same one, or every test (all)."""
        return self.name in (suite, "all")

    def host(self, name: str) -> SuiteHostRecord | None:
        return next((h for h in self.hosts if h.name == name), None)


@dataclass(frozen=True)
class RunRecord:
    path: Path  # the summary.json read
    series: SeriesId
    patched: bool
    baseline: str
    hosts: tuple[HostRecord, ...]
    suite: SuiteRecord | None = None  # a suite run's comparison (suite.json)


def load(path: Path) -> RunRecord:
    """The run in ``path``: a `kseries run -o DIR` directory or its summary.json."""
    summary = path / "summary.json" if path.is_dir() else path
    try:
        data = json.loads(summary.read_text())
    except OSError as exc:
        raise KseriesError(f"{summary}: cannot read run results ({exc.strerror})",
                           hint="give the directory of `kseries run -o DIR`") from exc
    except ValueError as exc:
        raise KseriesError(f"{summary}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise KseriesError(f"{summary}: not the summary of a kseries run",
                           hint=f"expected schema {SCHEMA!r}")
    try:
        return RunRecord(summary, SeriesId.from_json(data.get("series") or {}),
                         bool(data.get("patched")), str(data.get("baseline", "")),
                         tuple(_host(h) for h in data.get("hosts", [])),
                         _suite(summary.with_name(SUITE_FILE)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise KseriesError(f"{summary}: a host or test entry is malformed ({exc!r})",
                           hint="write it with kseries run") from exc


SUITE_FILE = "suite.json"


def _suite(path: Path) -> SuiteRecord | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KseriesError(f"{path}: cannot read the suite's results ({exc})") from exc
    hosts = tuple(SuiteHostRecord(
        str(h["host"]), tuple(str(k) for k in h.get("kinds", [])),
        {str(k): int(v) for k, v in h.get("counts", {}).items()},
        tuple(str(t) for t in h.get("regressions", [])),
        tuple(str(t) for t in h.get("splat_regressions", [])),
        tuple(str(t) for t in h.get("infra", [])),
        tuple((str(t["test"]), str(t["known_failure"]["reason"])) for t in h.get("tests", [])
              if t.get("known_failure") and t.get("series")
              and t["series"][0].get("status") in ("FAIL", "ERROR")),
        tuple((str(t["test"]), str(t.get("why", ""))) for t in h.get("tests", [])
              if t.get("verdict") == "flaky"))
        for h in d.get("hosts", []))
    return SuiteRecord(str(d.get("suite", "")), len(d.get("tests", [])),
                       int(d.get("rounds", 1)), hosts)


def _host(h: dict[str, Any]) -> HostRecord:
    return HostRecord(
        name=str(h["host"]), vendor=str(h["vendor"]), transport=str(h["transport"]),
        accel=str(h.get("accel", "")), description=str(h.get("description", "")),
        supports=frozenset(str(s) for s in h.get("supports", [])),
        verdict=str(h.get("verdict", "")), infra_error=str(h.get("infra_error", "")),
        built_kernel=bool(h.get("built_kernel", False)), kernel_note=str(h.get("kernel", "")),
        seen=Seen.from_json(h.get("seen") or {}),
        tests=tuple(_test(t) for t in h.get("tests", [])),
        evidence=str(h.get("evidence", "hardware")),
        emulator={str(k): str(v) for k, v in (h.get("emulator") or {}).items()},
        model={str(k): int(v) for k, v in (h.get("model") or {}).items()},
    )


def _test(t: dict[str, Any]) -> TestRecord:
    return TestRecord(
        name=str(t["name"]), kind=str(t.get("kind", "")), actual=str(t["actual"]),
        reason=str(t.get("reason", "")), expected=tuple(str(s) for s in t.get("expected", [])),
        expected_reason=str(t.get("expected_reason", "")), ok=bool(t.get("ok", False)),
        ktap=tuple(str(line) for line in t.get("ktap", [])),
    )
