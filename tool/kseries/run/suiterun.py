"""The suite on the unpatched base's kernel and on the series', in parallel, then compared.

Per host, the tests are split into shards, one QEMU guest each; every shard
of every round on both kernels is a job of one pool as wide as the cores
allow (``harness.default_jobs``), so the two kernels' runs overlap. Each
guest runs run-tests (a timeout per test, the test markers in the kernel log)
and suitejudge.py puts the shards' outputs back together into one run per
host, kernel and round, judges it and compares the kernels. A test that
failed on the series alone is run again here, and judged again there.

Only qemu hosts are split; an ssh or local host runs the whole suite at once.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kseries.build.emulator import Emulator
from kseries.errors import KseriesError
from kseries.progress import Reporter
from kseries.run import harness, initramfs, local, qemu, ssh
from kseries.run.inventory import Host, TestPlan
from kseries.run.outcome import GuestRun
from kseries.run.suite import SuiteConfig
from kseries.run.suitejudge import (
    BASE,
    SERIES,
    HostSuite,
    Job,
    confirm_host,
    host_kinds,
    judge_host,
)

ROUND_ENV = "KSERIES_ROUND"  # the round (1..N) of a repeated run, in every test's environment
# MiB a suite's guest needs besides its initramfs (unpacked in RAM): the memory tests
# (dirty_log_test, demand_paging_test, kvm_page_table_test, ...) map 1 GiB for their guest,
# and with 512 MiB fail on mmap (ENOMEM) on any kernel. QEMU takes the RAM as it is used.
GUEST_MEMORY_FLOOR = 2048


@dataclass(frozen=True)
class Kernels:
    base: Path  # the unpatched base's bzImage
    series: Path  # the series' bzImage


@dataclass
class SuiteReport:
    name: str  # the suite's name, e.g. "all"
    tests: list[str]
    rounds: int
    hosts: list[HostSuite]
    out_dir: Path
    accel: str
    seconds: float  # wall time of both kernels' runs
    jobs: int
    notes: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)  # the shards' tests
    # (host, kernel, round) -> each shard's guest run, as it came back
    raw: dict[tuple[str, str, int], list[GuestRun]] = field(default_factory=dict)
    reruns: int = 0  # times a series-only failure was to run again on each kernel

    @property
    def exit_code(self) -> int:
        """3 a host failed to run the suite, 2 a regression (a test or a splat), else 0."""
        if any(h.infra for h in self.hosts):
            return 3
        if any(h.regressions or h.splats.regressions for h in self.hosts):
            return 2
        return 0


def suite_jobs(hosts: Sequence[Host]) -> int:
    """Guests at once: as many as the cores, each TCG guest keeping one core per vCPU busy
    (not bounded by the hosts: one host's suite is split into shards)."""
    widest = max((h.qemu.smp for h in hosts if h.qemu), default=1)
    return max(1, (os.cpu_count() or 1) // widest)


def shards_of(tests: Sequence[str], count: int) -> list[list[str]]:
    """``tests`` dealt round-robin into at most ``count`` non-empty shards."""
    count = max(1, min(count, len(tests)))
    return [list(tests[i::count]) for i in range(count)]


def run_suite(
    hosts: Sequence[Host],
    plan: TestPlan,
    config: SuiteConfig,
    name: str,
    *,
    kernels: Kernels,
    tests: Mapping[str, Path],
    out_dir: Path,
    kselftest: Path,
    reporter: Reporter,
    rounds: int = 1,
    jobs: int | None = None,
    shards: int | None = None,
    accel: str | qemu.Accel | None = None,
    patched: bool = True,
    base_from: SuiteReport | None = None,
    reruns: int | None = None,
) -> SuiteReport:
    """Run ``tests`` (name -> binary, in this order) ``rounds`` times on both kernels of
    every host, and compare each test and each kernel message, host by host.

    ``patched``: the series' kernel carries the /proc/cpuinfo virt line (as
    ``harness.run_hosts`` takes it); ``shards`` per kernel and round (default: ``jobs``);
    ``base_from``: an earlier report whose base kernel's guests are taken instead of
    running them again (the same tests, hosts, rounds and shards; another series);
    ``reruns``: how many times a test that failed on the series alone runs again, alone,
    on both kernels before it is called a regression (default: the config's).
    """
    if rounds < 1:
        raise KseriesError(f"--repeat {rounds}: a suite runs at least once",
                           hint="--repeat 1 or more")
    names = list(tests)
    out_dir.mkdir(parents=True, exist_ok=True)
    guest = initramfs.GuestFiles.from_dir(kselftest)
    width = jobs or suite_jobs(hosts)
    per_kernel = shards or width
    # The emulated hosts boot on kseries' QEMU (built now if this machine has none).
    chosen, emu, emu_why = harness.qemu_for(hosts, kernels.series, kselftest, out_dir,
                                            reporter, accel)
    reporter.start("suite", f"{name}: {len(names)} test(s), {rounds} round(s), "
                   f"{len(hosts)} host(s), both kernels, {width} at once")
    groups = shards_of(names, per_kernel)

    def rd(name: str, chosen: Sequence[str], r: int) -> Path:
        """The initramfs of ``chosen`` for round ``r`` (a rerun's round is past the rounds)."""
        return initramfs.build(out_dir / "initramfs" / f"{name}.cpio",
                               {t: tests[t] for t in chosen}, guest=guest,
                               test_timeout=plan.test_timeout, timeouts=config.timeouts,
                               env={ROUND_ENV: str(r)})

    rds = {(r, s): rd(f"round{r}-shard{s}", group, r)
           for r in range(1, rounds + 1) for s, group in enumerate(groups, start=1)}
    reused = _reusable(base_from, hosts, names, rounds, groups)
    by_name = {h.name: h for h in hosts}  # a Host is not hashable (its lava table)
    jobs_list = [Job(h.name, k, r, s, tuple(groups[s - 1] if h.transport == "qemu" else names),
                     rds[r, s])
                 for h in hosts for r in range(1, rounds + 1)
                 for k in (BASE, SERIES) for s in range(1, len(groups) + 1)
                 if (h.transport == "qemu" or s == 1) and (k, h.name) not in reused]
    t0 = time.monotonic()
    lock = threading.Lock()  # the reporter is called from the pool's threads

    def one(job: Job) -> GuestRun:
        host = by_name[job.host]
        with lock:
            reporter.update(f"{host.name}: {job.kernel} kernel, {job.label}")
        try:
            if host.emulated_feature and emu is None:
                raise KseriesError(f"{host.name}: {emu_why or 'no emulator'}")
            return _boot(host, job.kernel, list(job.tests), kernels, job.rd, chosen, tests,
                         guest, plan, config, out_dir / job.kernel / host.name / job.where,
                         emu)
        except KseriesError as exc:
            return GuestRun(output="", infra_error=str(exc))
        except OSError as exc:
            return GuestRun(output="", infra_error=f"{host.name}: {exc}")

    def run_all(jobs_: list[Job]) -> dict[Job, GuestRun]:
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="suite") as pool:
            return dict(zip(jobs_, pool.map(one, jobs_), strict=True))

    runs = run_all(jobs_list)
    out = []
    raw: dict[tuple[str, str, int], list[GuestRun]] = {}
    for host in hosts:
        shard_groups = groups if host.transport == "qemu" else [names]
        by_round = {(k, r): reused.get((k, host.name), {}).get(r) or
                    [v for j, v in runs.items() if (j.host, j.kernel, j.round) == (host.name, k, r)]
                    for k in (BASE, SERIES) for r in range(1, rounds + 1)}
        raw.update({(host.name, k, r): list(v) for (k, r), v in by_round.items()})
        ran_under = qemu.accel_for(host, chosen).name if chosen else ""
        out.append(judge_host(host, host_kinds(host, ran_under), names,
                              by_round, shard_groups, plan, config, out_dir, patched=patched,
                              emulator=emu if host.emulated_feature else None))
    # A failure on the series alone is run again (the test alone, on both kernels) before
    # it counts: one round under a loaded TCG host is not proof.
    again = config.reruns if reruns is None else reruns
    wanted = {hs.host.name: [c.test for c in hs.regressions] for hs in out if not hs.infra}
    rerun_jobs = []
    for host_name, cands in wanted.items():
        for n in range(1, again + 1) if cands else ():
            image = rd(f"{host_name}-rerun{n}", cands, rounds + n)
            rerun_jobs += [Job(host_name, k, rounds + n, 0, tuple(cands), image)
                           for k in (BASE, SERIES)]
    if rerun_jobs:
        reporter.update(f"{sum(map(len, wanted.values()))} series-only failure(s): "
                        f"running them again, {again} time(s) on each kernel")
        reran = run_all(rerun_jobs)
        for hs in out:
            mine = {j: v for j, v in reran.items() if j.host == hs.host.name}
            if mine:
                confirm_host(hs, mine, plan, config, out_dir, patched=patched,
                             emulator=emu if hs.host.emulated_feature else None)
    seconds = time.monotonic() - t0
    report = SuiteReport(name, names, rounds, out, out_dir, chosen.name if chosen else "",
                         seconds, width, groups=groups, raw=raw, reruns=again)
    if reused and base_from is not None:
        report.notes.append(f"the base kernel's runs were taken from {base_from.out_dir}")
    if chosen is not None:
        report.notes.append(f"qemu accel: {chosen.name} ({chosen.reason})")
    bad = sum(len(h.regressions) + len(h.splats.regressions) for h in out)
    reporter.finish({0: "PASS", 2: "FAIL", 3: "FAIL"}[report.exit_code],
                    f"{bad} regression(s) in {seconds:.0f}s; {out_dir}")
    return report


def _reusable(earlier: SuiteReport | None, hosts: Sequence[Host], names: list[str],
              rounds: int, groups: list[list[str]]) -> dict[tuple[str, str], dict[
                  int, list[GuestRun]]]:
    """(BASE, host) -> round -> the shards' runs of ``earlier``, for the hosts it ran alike."""
    if earlier is None:
        return {}
    if earlier.tests != names or earlier.rounds != rounds or earlier.groups != groups:
        raise KseriesError("the earlier suite run ran other tests, rounds or shards",
                           hint="run both kernels again")
    return {(BASE, h.name): {r: earlier.raw[h.name, BASE, r] for r in range(1, rounds + 1)}
            for h in hosts if all((h.name, BASE, r) in earlier.raw
                                  for r in range(1, rounds + 1))}


def _boot(host: Host, kernel: str, group: list[str], kernels: Kernels, rd: Path,
          accel: qemu.Accel | None, tests: Mapping[str, Path], guest: initramfs.GuestFiles,
          plan: TestPlan, config: SuiteConfig, work: Path,
          emulator: Emulator | None = None) -> GuestRun:
    image = kernels.base if kernel == BASE else kernels.series
    chosen = {t: tests[t] for t in group}
    if host.transport == "qemu":
        assert host.qemu is not None and accel is not None
        limits = sum(config.timeouts.get(t, plan.test_timeout) for t in group)
        size_mb = rd.stat().st_size >> 20
        settings = dataclasses.replace(
            host.qemu, memory_mb=max(host.qemu.memory_mb, GUEST_MEMORY_FLOOR + 2 * size_mb),
            timeout=host.qemu.timeout + limits)
        return qemu.run(dataclasses.replace(host, qemu=settings), image, rd, accel, work,
                        emulator)
    if host.transport == "ssh":
        return ssh.run(host, chosen, guest, work, kernel=image, test_timeout=plan.test_timeout)
    return local.run(host, chosen, guest, work, test_timeout=plan.test_timeout)

