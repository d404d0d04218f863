"""What a LAVA job recorded, read back into a ``GuestRun`` that kseries judges.

A job's record is a directory (or a directory of them, one per job) holding
any of these YAML files, told apart by their content, not their names:

- the job log: LAVA's ``{dt, lvl, msg}`` entries, one YAML flow mapping a
  line as ``lava-run`` prints them, or the YAML list ``lavacli jobs logs --raw ID``
  exports. Its ``target`` lines
  are the console (run-tests' facts, KTAP and dmesg), its ``results`` entries
  the test cases lava-test-case recorded and the job's own result;
- a server's results export (``lavacli results --yaml ID``, or the web UI's
  YAML download): a list of ``{suite, name, result, ...}``;
- the job definition (the one ``kseries run --lava`` wrote; its metadata names
  the kseries host), the dispatcher's ``description.yaml`` and ``result.yaml``.

LAVA's recorded result of each test is what counts (pass, fail, skip; unknown
is a test that gave no result); the console's KTAP adds the reasons. Without
a console (a results export alone) only the tests are judged, not the kernel
checks, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run import ktap
from kseries.run.harness import judge
from kseries.run.inventory import Inventory
from kseries.run.ktap import Status
from kseries.run.lava import DEFINITION
from kseries.run.outcome import DONE, GuestRun, HostReport, parse_output, section
from kseries.run.results import Baseline, RunReport

TO_STATUS = {"pass": Status.PASS, "fail": Status.FAIL, "skip": Status.SKIP,
             "unknown": Status.ERROR}
SUITE = f"0_{DEFINITION}"


@dataclass(frozen=True)
class Case:
    suite: str
    name: str
    result: str  # pass / fail / skip / unknown
    seconds: float = 0.0


@dataclass
class Record:
    """One LAVA job as found on disk."""

    source: Path
    host: str = ""  # the kseries host named in the job's metadata
    kernel: str = ""  # the kernel URL of the job's deploy action
    cases: list[Case] = field(default_factory=list)
    console: list[str] = field(default_factory=list)  # target lines, in order
    job_result: str = ""  # LAVA's "lava/job" case: pass / fail ("" if unknown)
    job_error: str = ""
    has_log: bool = False
    seconds: float = 0.0  # from the log's first entry to its last
    planned: list[str] = field(default_factory=list)  # the job's kseries.tests metadata

    def tests(self) -> dict[str, Case]:
        """kseries' test cases (the suite of its test definition), by name."""
        return {c.name: c for c in self.cases if c.suite.endswith(DEFINITION)}


def load(path: Path) -> Any:
    """A YAML document; lava-run's own log (one flow mapping a line) as their list."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise KseriesError(f"{path}: cannot read it ({exc.strerror})") from exc
    if text.lstrip().startswith("{"):  # one flow mapping a line: make them a list
        text = "\n".join(f"- {line}" for line in text.splitlines() if line.strip())
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise KseriesError(f"{path}: not readable as LAVA YAML ({exc})") from exc


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _take_log(rec: Record, entries: list[dict[str, Any]]) -> None:
    rec.has_log = True
    stamps = [str(e["dt"]) for e in entries if e.get("dt")]
    if stamps:
        try:
            span = datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])
            rec.seconds = span.total_seconds()
        except ValueError:
            pass
    for e in entries:
        lvl, msg = e.get("lvl"), e.get("msg")
        if lvl == "target" and isinstance(msg, str):
            rec.console.extend(msg.splitlines() or [""])
        elif lvl == "results" and isinstance(msg, dict):
            _take_result(rec, str(msg.get("definition", "")), msg)


def _take_result(rec: Record, suite: str, d: dict[str, Any]) -> None:
    name = str(d.get("case", d.get("name", "")))
    result = str(d.get("result", ""))
    if suite == "lava" and name == "job":
        rec.job_result = result
        meta: dict[str, Any] = d["metadata"] if isinstance(d.get("metadata"), dict) else d
        err = " ".join(str(meta.get(k, "")) for k in ("error_type", "error_msg")).strip()
        rec.job_error = err or rec.job_error
        return
    if suite == "lava":
        return
    rec.cases.append(Case(suite, name, result, _seconds(d.get("measurement"))))


def _take_definition(rec: Record, d: dict[str, Any]) -> None:
    meta = d.get("metadata") or {}
    if isinstance(meta, dict) and meta.get("kseries.host"):
        rec.host = str(meta["kseries.host"])
        rec.planned = [t for t in str(meta.get("kseries.tests", "")).split(",") if t]
    for action in d.get("actions", []):
        deploy = action.get("deploy") if isinstance(action, dict) else None
        if isinstance(deploy, dict):
            kernel = (deploy.get("images") or {}).get("kernel") or deploy.get("kernel") or {}
            if isinstance(kernel, dict) and kernel.get("url"):
                rec.kernel = str(kernel["url"])


def _take(rec: Record, data: Any) -> bool:
    """Fold one YAML document into ``rec``; False if it is nothing LAVA writes."""
    if isinstance(data, list) and data and all(isinstance(e, dict) for e in data):
        if all("lvl" in e and "msg" in e for e in data):
            _take_log(rec, data)
            return True
        if all("suite" in e and "name" in e and "result" in e for e in data):
            if not rec.has_log:  # the log's own results are the same cases
                for e in data:
                    _take_result(rec, str(e["suite"]), e)
            return True
        return False
    if not isinstance(data, dict):
        return False
    if "actions" in data and "device_type" in data:
        _take_definition(rec, data)
        return True
    if isinstance(data.get("job"), dict) and "actions" in data["job"]:  # description.yaml
        _take_definition(rec, data["job"])
        return True
    if data.get("definition") == "lava" and data.get("case") == "job":  # result.yaml
        if not rec.job_result:
            _take_result(rec, "lava", data)
        return True
    return False


def read_dir(path: Path) -> Record:
    """One job's record from the YAML files in ``path``."""
    rec = Record(path)
    found = False
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    # The log first: where there is one, a results export of the same job adds nothing.
    docs = [(p, load(p)) for p in files]
    docs.sort(key=lambda pd: not (isinstance(pd[1], list) and pd[1] and "lvl" in pd[1][0]))
    for _, data in docs:
        found = _take(rec, data) or found
    if not found:
        raise KseriesError(f"{path}: no LAVA job log, results or job definition here",
                           hint="save `lava-run ... 2> DIR/log.yaml`, or `lavacli jobs logs "
                           "--raw ID > DIR/log.yaml` and `lavacli results ID --yaml > "
                           "DIR/results.yaml`")
    return rec


def read(path: Path) -> list[Record]:
    """The jobs under ``path``: the directory itself, or each of its subdirectories."""
    if not path.is_dir():
        raise KseriesError(f"{path}: no such directory",
                           hint="pass the dispatcher's output directory (or one per job)")
    subdirs = sorted(p for p in path.iterdir() if p.is_dir()
                     and any(q.suffix in (".yaml", ".yml") for q in p.iterdir()))
    if any(p.suffix in (".yaml", ".yml") for p in path.iterdir()) or not subdirs:
        return [read_dir(path)]
    return [read_dir(p) for p in subdirs]


def ktap_from(rec: Record, tests: list[str], console_ktap: str) -> str:
    """KTAP of LAVA's recorded results, with the console's reasons and output."""
    seen = ktap.parse(console_ktap).by_name()
    cases = rec.tests()
    results = []
    for name in tests:
        case = cases.get(name)
        if case is None:
            continue
        status = TO_STATUS.get(case.result, Status.ERROR)
        raw = seen.get(name)
        diag = list(raw.diagnostics) if raw else [f"kseries-time: {case.seconds:.2f}"]
        reason = raw.reason if raw else ""
        if raw is not None and raw.status is not status:
            reason = (f"LAVA recorded {case.result}, the console's KTAP says {raw.status}"
                      + (f" ({reason})" if reason else ""))
        elif case.result not in TO_STATUS:
            reason = f"LAVA recorded {case.result!r}"
        directive = {Status.SKIP: "SKIP", Status.ERROR: "ERROR"}.get(status, "")
        results.append(ktap.TestResult(0, name, status in (Status.PASS, Status.SKIP),
                                       directive, reason or f"LAVA: {case.result}", diag))
    return ktap.emit(results)


def guest_run(rec: Record, tests: list[str]) -> GuestRun:
    """The run kseries judges: the console's facts and dmesg, LAVA's results."""
    console = "\n".join(rec.console)
    out = parse_output(console)
    facts, _ = section(console, "FACTS")
    dmesg = out.dmesg
    parts = []
    if facts.strip():
        parts += ["KSERIES-FACTS-BEGIN", facts.rstrip("\n"), "KSERIES-FACTS-END"]
    parts += ["KSERIES-KTAP-BEGIN", ktap_from(rec, tests, out.ktap_text).rstrip("\n"),
              "KSERIES-KTAP-END"]
    if dmesg.strip():
        parts += ["KSERIES-DMESG-BEGIN", dmesg.rstrip("\n"), "KSERIES-DMESG-END"]
    infra = ""
    if rec.job_result == "fail":
        infra = f"LAVA job failed: {rec.job_error or 'no reason given'}"
    finished = out.done if rec.console else all(t in rec.tests() for t in tests)
    if finished:
        parts.append(DONE)
    return GuestRun(output="\n".join(parts) + "\n", console=console, infra_error=infra,
                    kernel_note=f"LAVA job {rec.source.name}: kernel {rec.kernel or 'unknown'}",
                    duration=rec.seconds)


def host_reports(records: list[Record], inv: Inventory, out_dir: Path, *, patched: bool,
                 baseline: Baseline | None, host: str = "") -> list[HostReport]:
    """Each job judged against what its host (from the inventory) should do."""
    by_name = {h.name: h for h in inv.hosts}
    reports = []
    for rec in records:
        name = rec.host or host
        if not name:
            raise KseriesError(f"{rec.source}: the job names no kseries host",
                               hint="keep the job definition kseries wrote next to the log, "
                               "or pass --host NAME")
        if name not in by_name:
            raise KseriesError(f"{rec.source}: host {name!r} is not in {inv.path}",
                               hint=f"hosts: {', '.join(by_name)}; pass the inventory the "
                               "jobs were written from with --hosts")
        tests = rec.planned or inv.plan.names()
        report = judge(by_name[name], guest_run(rec, tests), inv.plan, tests, out_dir / name,
                       patched=patched, baseline=baseline, built_kernel=True,
                       checks=rec.has_log)
        if not rec.has_log:
            report.notes.append("no job log, only LAVA's test cases: the kernel checks "
                                "were not judged")
        reports.append(report)
    return reports


def run_report(source: Path, inv: Inventory, out_dir: Path, *, patched: bool,
               baseline: Baseline | None, host: str = "") -> RunReport:
    """``kseries run --lava-results``: the jobs under ``source`` as one run's report."""
    records = read(source)
    reports = host_reports(records, inv, out_dir, patched=patched, baseline=baseline,
                           host=host)
    kernels = sorted({r.kernel.removeprefix("file://") for r in records if r.kernel})
    return RunReport(reports, out_dir, Path(kernels[0] if len(kernels) == 1 else "-"), patched,
                     baseline.source if baseline else "", [f"LAVA results read from {source}"])
