"""A suite's guests judged and compared: each kernel's run of each round, the reruns
of a series-only failure, and every test and splat of the series against the base.

suiterun.py boots the guests (``Job``) and hands their output here: the shards
of a round are merged into one run, each run is judged as the harness judges
any (the kernel checks, KTAP, each test's output and time), then suite.py
compares each test and splats.py each kernel message (``HostSuite``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kseries.build.emulator import Emulator
from kseries.run import harness, ktap, splats
from kseries.run.inventory import Host, Kind, TestPlan
from kseries.run.outcome import DONE, GuestRun, HostReport, parse_output, section
from kseries.run.suite import Comparison, Result, SuiteConfig, compare, confirm

BASE, SERIES = "base", "series"


@dataclass(frozen=True)
class Job:
    """One guest: a host, a kernel, a round (past the rounds: a rerun) and a shard (0: a
    rerun's one guest), with its tests and initramfs."""

    host: str
    kernel: str
    round: int
    shard: int
    tests: tuple[str, ...]
    rd: Path

    @property
    def where(self) -> str:
        """Its directory under the kernel's and host's."""
        if self.shard == 0:
            return f"rerun{self.round}"
        return f"round{self.round}/shard{self.shard}"

    @property
    def label(self) -> str:
        return f"rerun (round {self.round})" if self.shard == 0 else \
            f"round {self.round}, shard {self.shard}"


@dataclass
class HostSuite:
    """One host's suite: every round on each kernel, and the comparison."""

    host: Host
    kinds: tuple[str, ...]  # what known failures and the allowlist are keyed by
    reports: dict[str, list[HostReport]]  # BASE / SERIES -> one report per round
    # BASE / SERIES -> per round, each shard's tests and kernel log
    shard_logs: dict[str, list[list[tuple[list[str], str]]]]
    comparisons: list[Comparison] = field(default_factory=list)
    splats: splats.SplatComparison = field(default_factory=splats.SplatComparison)

    @property
    def infra(self) -> list[str]:
        return [f"{k} kernel, round {n}: {r.infra_error}" for k, rs in self.reports.items()
                for n, r in enumerate(rs, start=1) if r.infra_error]

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.fails_run]


def host_kinds(host: Host, accel: str) -> tuple[str, ...]:
    """A host's kind, e.g. "tcg-amd" (qemu under TCG) or "ssh-amd", then its name;
    ``accel``: what the host's guests ran under."""
    how = accel if host.transport == "qemu" and accel else host.transport
    return f"{how}-{host.vendor}", host.name


def judge_host(host: Host, kinds: tuple[str, ...], names: Sequence[str],
               runs: Mapping[tuple[str, int], Sequence[GuestRun]],
               groups: Sequence[Sequence[str]], plan: TestPlan, config: SuiteConfig,
               out_dir: Path, *, patched: bool = True,
               emulator: Emulator | None = None) -> HostSuite:
    """One host's suite from its guests' runs: (kernel, round) -> one run per shard of
    ``groups``. Each kernel and round is judged (``_judge``), then every test and splat
    is compared."""
    hs = HostSuite(host, kinds, {BASE: [], SERIES: []}, {BASE: [], SERIES: []})
    for (kernel, r), parts in sorted(runs.items(), key=lambda kv: (kv[0][0] != BASE, kv[0][1])):
        hs.reports[kernel].append(_judge(host, merge(parts, groups), names, kernel,
                                         out_dir / kernel / host.name / f"round{r}", plan,
                                         patched=patched, emulator=emulator))
        hs.shard_logs[kernel].append(
            [(list(g), _kernel_log(p)) for p, g in zip(parts, groups, strict=True)])
    _compare(hs, names, config)
    return hs


def _judge(host: Host, run: GuestRun, tests: Sequence[str], kernel: str, work: Path,
           plan: TestPlan, *, patched: bool, emulator: Emulator | None) -> HostReport:
    """``kernel``'s run of ``tests`` judged as the harness judges a run (on an emulated
    host with the ``emulator`` it booted on, and no model count check: the suite runs
    neither the feature test nor the design checks)."""
    return harness.judge(host, run, TestPlan(tuple(tests), plan.feature, plan.test_timeout),
                         list(tests), work, patched=kernel == SERIES and patched,
                         baseline=None, emulator=emulator, model_check=False)


def confirm_host(hs: HostSuite, reran: Mapping[Job, GuestRun], plan: TestPlan,
                 config: SuiteConfig, out_dir: Path, *, patched: bool = True,
                 emulator: Emulator | None = None) -> None:
    """Each regression of ``hs`` judged again with its reruns (``reran``: its guests, each
    running the host's series-only failures once on one kernel). A rerun that did not
    finish leaves the regression as it was, and says so."""
    got: dict[str, dict[str, list[Result]]] = {BASE: {}, SERIES: {}}
    broken: list[str] = []
    for job, run in sorted(reran.items(), key=lambda kv: (kv[0].round, kv[0].kernel)):
        report = _judge(hs.host, run, job.tests, job.kernel,
                        out_dir / job.kernel / hs.host.name / job.where, plan,
                        patched=patched, emulator=emulator)
        if report.infra_error:
            broken.append(f"{job.kernel} kernel, {job.label}: {report.infra_error}")
        for test, result in results_of(report).items():
            if not result.reason.startswith("no result"):
                got[job.kernel].setdefault(test, []).append(result)
    reruns = len({j.round for j in reran})
    for i, c in enumerate(hs.comparisons):
        if not c.fails_run:
            continue
        b, s = got[BASE].get(c.test, []), got[SERIES].get(c.test, [])
        if broken or len(b) < reruns or len(s) < reruns:
            hs.comparisons[i] = dataclasses.replace(
                c, why=f"{c.why}; not confirmed, its reruns did not finish"
                f"{': ' + broken[0] if broken else ''}")
            continue
        hs.comparisons[i] = confirm(c, b, s, hs.kinds[0], config.flaky_reason(hs.kinds, c.test))


def merge(parts: Sequence[GuestRun], groups: Sequence[Sequence[str]]) -> GuestRun:
    """One run from the shards of one kernel and round: the first shard's facts, every
    shard's KTAP results (renumbered) and kernel log; a shard's failure is the run's."""
    if len(parts) == 1:
        return parts[0]
    results: list[ktap.TestResult] = []
    logs: list[str] = []
    errors, done = [], True
    for n, (part, group) in enumerate(zip(parts, groups, strict=True), start=1):
        out = parse_output(part.output)
        results += ktap.parse(out.ktap_text).results
        logs.append(out.dmesg)
        done = done and out.done
        if part.infra_error:
            errors.append(f"shard {n} ({group[0]}..{group[-1]}): {part.infra_error}")
    facts, _ = section(parts[0].output, "FACTS")
    text = "\n".join([
        "KSERIES-FACTS-BEGIN", facts.rstrip("\n"), "KSERIES-FACTS-END",
        "KSERIES-KTAP-BEGIN", ktap.emit(results).rstrip("\n"), "KSERIES-KTAP-END",
        "KSERIES-DMESG-BEGIN", "\n".join(s.rstrip("\n") for s in logs), "KSERIES-DMESG-END",
        *([DONE] if done else [])]) + "\n"
    failed = next((p for p in parts if p.infra_error), parts[0])
    logs_of = {f"{k}{n}": v for n, p in enumerate(parts, start=1) for k, v in p.logs.items()}
    return GuestRun(output=text, console=failed.console, infra_error="; ".join(errors),
                    kernel_note=parts[0].kernel_note, accel=parts[0].accel,
                    duration=max(p.duration for p in parts), logs=logs_of,
                    notes=[n for p in parts for n in p.notes])


def _kernel_log(run: GuestRun) -> str:
    """The shard's kernel log; its console where the guest died before printing it."""
    dmesg, ended = section(run.output, "DMESG")
    return dmesg if ended else run.console


def results_of(report: HostReport) -> dict[str, Result]:
    return {t.name: Result(t.actual, t.reason, tuple(t.output), t.seconds)
            for t in report.tests if t.kind is not Kind.CHECK}


def splats_of(hs: HostSuite, kernel: str, missing: Mapping[int, set[str]]) -> list[
        splats.Splat]:
    """Every splat of ``kernel``'s rounds; a shard that died has its console scanned, and
    what it printed is put on its first test left without a result (the one running)."""
    found: list[splats.Splat] = []
    for n, shards in enumerate(hs.shard_logs[kernel], start=1):
        for group, log in shards:
            lost = [t for t in group if t in missing.get(n, set())]
            for s in splats.scan(log):
                if s.test == splats.BOOT and lost:
                    s = dataclasses.replace(s, test=lost[0], during=True)
                found.append(s)
    return found


def _compare(hs: HostSuite, names: Sequence[str], config: SuiteConfig) -> None:
    per: dict[str, dict[str, list[Result]]] = {BASE: {}, SERIES: {}}
    missing: dict[str, dict[int, set[str]]] = {BASE: {}, SERIES: {}}
    for kernel in (BASE, SERIES):
        for n, report in enumerate(hs.reports[kernel], start=1):
            got = results_of(report)
            missing[kernel][n] = {t for t in names if got.get(t) is None
                                  or got[t].reason.startswith("no result")}
            for test, result in got.items():
                per[kernel].setdefault(test, []).append(result)
    base_splats = splats_of(hs, BASE, missing[BASE])
    series_splats = splats_of(hs, SERIES, missing[SERIES])
    hs.splats = splats.compare(base_splats, series_splats, config.allowlist, hs.kinds)
    new = {s.identity for s in hs.splats.new}
    for test in names:
        known = config.known_failure(hs.kinds, test)
        c = compare(test, per[BASE].get(test, []), per[SERIES].get(test, []), known,
                    hs.kinds[0], config.flaky_reason(hs.kinds, test))
        c.splats = list(dict.fromkeys(s.identity for s in series_splats
                                      if s.identity in new and s.test == test))
        hs.comparisons.append(c)
