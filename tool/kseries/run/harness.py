"""Run the built kernel and selftests on a set of hosts, in parallel, and judge
each host against what it should do.

This is the API the rest of the tool calls (``kseries run``, and the build
stage feeding it)::

    report = run_hosts(hosts, plan, kernel=bzImage, tests={"smm_test": path, ...},
                       out_dir=results, kselftest=KSELFTEST, reporter=r,
                       patched=True, baseline=base_report_or_loaded_baseline)

A baseline is the same run on the unpatched base's kernel (``patched=False``,
``baseline=None``); smoke tests and the kernel-log check are then expected to
give what they gave there, because TCG fails some tests by itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kseries.build import emulator as emulators
from kseries.errors import KseriesError
from kseries.progress import Reporter
from kseries.run import initramfs, local, model, qemu, ssh
from kseries.run.identity import SeriesId
from kseries.run.inventory import (
    CHECK_KERNEL_LOG,
    CHECK_MODEL,
    Expectation,
    Host,
    Kind,
    SeriesTraits,
    TestPlan,
    check_expectations,
    expect,
    test_expectation,
)
from kseries.run.ktap import Status
from kseries.run.outcome import GuestRun, HostReport, TestOutcome, evaluate, parse_output
from kseries.run.results import Baseline, RunReport, write


@dataclass(frozen=True)
class Prepared:
    """What every host of one run shares: the tests, the initramfs, the accelerator."""

    kernel: Path | None
    tests: dict[str, Path]
    kinds: dict[str, Kind]
    guest: initramfs.GuestFiles
    initramfs: Path | None
    accel: qemu.Accel | None
    plan: TestPlan
    emulator: emulators.Emulator | None = None  # kseries' QEMU, for the emulated hosts
    emulator_error: str = ""  # why it could not be had: those hosts' infrastructure failure
    traits: SeriesTraits = field(default_factory=SeriesTraits)


class _Locked:
    """Serialises a reporter's calls: hosts report from worker threads."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.lock = threading.Lock()

    def update(self, detail: str) -> None:
        with self.lock:
            self.inner.update(detail)

    def note(self, message: str) -> None:
        with self.lock:
            self.inner.note(message)


def default_jobs(hosts: tuple[Host, ...] | list[Host]) -> int:
    """Parallel hosts, bounded by the cores (a TCG guest keeps one core busy per vCPU)."""
    cores = os.cpu_count() or 1
    widest = max((h.qemu.smp for h in hosts if h.qemu), default=1)
    return max(1, min(len(hosts), cores // widest))


def run_hosts(
    hosts: tuple[Host, ...] | list[Host],
    plan: TestPlan,
    *,
    kernel: Path | None,
    tests: Mapping[str, Path],
    out_dir: Path,
    kselftest: Path,
    reporter: Reporter,
    patched: bool,
    baseline: Baseline | None = None,
    jobs: int | None = None,
    accel: str | qemu.Accel | None = None,
    series: SeriesId | None = None,
    traits: SeriesTraits | None = None,
) -> RunReport:
    """Run ``tests`` (name -> binary, run in this order) on every host.

    ``kernel`` is the bzImage for QEMU hosts (and the ssh install hook);
    ``patched`` says whether it carries the series (then the /proc/cpuinfo virt
    line is expected); ``accel`` overrides every QEMU host's accel setting: "auto",
    "kvm", "tcg", or an ``Accel`` already chosen (by ``decide_accel``, so that a
    baseline run and the run compared with it probe /dev/kvm only once);
    ``series`` is what the kernel was built from, recorded in the results;
    ``traits`` what the series itself is expected to show (its virt line, its
    design checks' results).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    reporter.start("run", f"{len(hosts)} host(s), {len(tests)} test(s)")
    prepared = prepare(hosts, plan, kernel=kernel, tests=tests, out_dir=out_dir,
                       kselftest=kselftest, reporter=reporter, accel=accel, traits=traits)
    locked = _Locked(reporter)
    workers = jobs or default_jobs(hosts)

    def one(host: Host) -> HostReport:
        return _run_host(host, prepared, out_dir / host.name, locked, patched, baseline)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
        reports = list(pool.map(one, hosts))
    notes = []
    missing = [t for t in plan.names() if t not in tests]
    if missing:
        notes.append(f"not run (no binary given): {', '.join(missing)}")
    if prepared.accel:
        notes.append(f"qemu accel: {prepared.accel.name} ({prepared.accel.reason})")
    report = RunReport(reports, out_dir, kernel or Path("-"), patched,
                       baseline.source if baseline else "", notes, series or SeriesId())
    write(report)
    verdicts = [h.verdict for h in reports]
    reporter.finish({0: "PASS", 2: "FAIL", 3: "FAIL"}[report.exit_code],
                    f"{verdicts.count('pass')} as expected, {verdicts.count('fail')} not, "
                    f"{verdicts.count('infra')} infrastructure failure(s); {out_dir}")
    return report


def prepare(
    hosts: tuple[Host, ...] | list[Host],
    plan: TestPlan,
    *,
    kernel: Path | None,
    tests: Mapping[str, Path],
    out_dir: Path,
    kselftest: Path,
    reporter: Reporter,
    accel: str | qemu.Accel | None = None,
    traits: SeriesTraits | None = None,
) -> Prepared:
    guest = initramfs.GuestFiles.from_dir(kselftest)
    kinds = {name: plan.kind(name) for name in tests}
    rd, chosen = None, None
    qemu_hosts = [h for h in hosts if h.transport == "qemu"]
    if qemu_hosts:
        if kernel is None or not kernel.is_file():
            raise KseriesError(f"kernel {kernel} not found",
                               hint="build the vm kernel first (kseries build) or pass --kernel")
        reporter.update("initramfs: busybox-static + run-tests + "
                        f"{len(tests)} test(s)")
        rd = initramfs.build(out_dir / "initramfs.cpio", tests, guest=guest,
                             test_timeout=plan.test_timeout)
    chosen, emu, why = qemu_for(hosts, kernel, kselftest, out_dir, reporter, accel)
    return Prepared(kernel, dict(tests), kinds, guest, rd, chosen, plan, emu, why,
                    traits or SeriesTraits())


def qemu_for(hosts: Sequence[Host], kernel: Path | None, kselftest: Path, out_dir: Path,
             reporter: Reporter, accel: str | qemu.Accel | None,
             ) -> tuple[qemu.Accel | None, emulators.Emulator | None, str]:
    """What the qemu hosts of a run boot with: the accelerator of the stock ones (a
    probe boot of ``kernel`` decides, unless ``accel`` is given), and kseries' QEMU
    for the emulated ones (or why it cannot be had)."""
    chosen = accel if isinstance(accel, qemu.Accel) else None
    stock = [h for h in hosts if h.transport == "qemu" and not h.emulated_feature]
    if stock and chosen is None:
        assert kernel is not None
        chosen = decide_accel(stock, kernel, kselftest, out_dir / "accel-probe", reporter,
                              accel if isinstance(accel, str) else None)
    elif chosen is None and any(h.transport == "qemu" for h in hosts):
        chosen = qemu.EMULATED_ACCEL
    if not any(h.emulated_feature for h in hosts):
        return chosen, None, ""
    return chosen, *emulator_for(kselftest, reporter)


def emulator_for(kselftest: Path, reporter: Reporter) -> tuple[emulators.Emulator | None, str]:
    """kseries' QEMU with the model (built now if this machine has none), or why not.

    A failure here is the emulated hosts' infrastructure failure, not the run's:
    the other hosts still run.
    """
    try:
        spec = emulators.load_spec(kselftest)
        if emulators.find(spec) is None:
            reporter.update("building the emulator (once per machine; kseries build --emulator)")
        return emulators.ensure(spec, reporter=reporter), ""
    except KseriesError as exc:
        reporter.note(f"emulated hosts: {exc}")
        return None, f"the emulator is not available: {exc}"


def decide_accel(hosts: tuple[Host, ...] | list[Host], kernel: Path, kselftest: Path,
                 work: Path, reporter: Reporter, requested: str | None = None) -> qemu.Accel:
    """One accelerator for the run's QEMU hosts: KVM only if a probe boot works."""
    asked = {requested or h.qemu.accel for h in hosts if h.qemu} or {"auto"}
    wanted = "auto" if "auto" in asked else asked.pop()
    if wanted != "tcg":
        reporter.update("probing /dev/kvm with a tiny boot")
    chosen = qemu.choose_accel(wanted, kernel, initramfs.GuestFiles.from_dir(kselftest), work)
    if chosen.name == "tcg" and wanted == "auto":
        reporter.note(f"KVM unusable: {chosen.reason}")
    return chosen


def runs_built_kernel(host: Host) -> bool:
    """Whether ``host`` boots the kernel given to the run (else it tests its own)."""
    if host.transport == "qemu":
        return True
    return host.transport == "ssh" and host.ssh is not None and bool(host.ssh.install_hook)


def expectations_for(host: Host, plan: TestPlan, tests: list[str], patched: bool,
                     baseline: Baseline | None, *, built_kernel: bool | None = None,
                     checks: bool = True, traits: SeriesTraits | None = None,
                     model_check: bool = True,
                     ) -> tuple[dict[str, Expectation], list[str]]:
    """What each check and test should give on ``host``, and notes on how that was decided.

    ``built_kernel``: whether the host ran the run's kernel (default: from its
    transport); ``checks``: whether the kernel checks are judged at all (not
    where only a lab's per-test results are known).
    """
    notes: list[str] = []
    ran_built = runs_built_kernel(host) if built_kernel is None else built_kernel
    if patched and not ran_built:
        notes.append("the host runs its own kernel: the virt line is not expected of it")
        patched = False
    traits = traits or SeriesTraits()
    exp = check_expectations(host, patched=patched and traits.virt_line) if checks else {}
    if checks and model_check and patched and host.emulated_feature:
        exp[CHECK_MODEL] = expect(Status.PASS, reason="the model's exits and let-throughs "
                                        "equal what the tests saw")
    for name in tests:
        # a host on its own kernel is held to what it declares, as a lab's is
        exp[name] = test_expectation(host, plan, name, traits, patched=patched or not ran_built)
    if baseline is None:
        return exp, notes
    if host.name in baseline.broken:
        notes.append("the baseline run of this host failed: smoke tests not compared")
        return exp, notes
    compared = [n for n in tests if plan.kind(n) is Kind.SMOKE]
    compared += [CHECK_KERNEL_LOG] if checks else []
    for name in compared:
        got = baseline.get(host.name, name)
        if got is None:
            notes.append(f"{name}: not in the baseline, not compared")
            continue
        status, reason = got
        exp[name] = expect(status, reason=f"as on the unpatched base: {status}"
                           + (f" ({reason})" if reason else ""))
    return exp, notes


def judge(host: Host, run: GuestRun, plan: TestPlan, tests: list[str], work: Path, *,
          patched: bool, baseline: Baseline | None, built_kernel: bool | None = None,
          checks: bool = True, traits: SeriesTraits | None = None,
          emulator: emulators.Emulator | None = None, model_check: bool = True) -> HostReport:
    """``host``'s report from what it brought back: every transport's runs and LAVA's.

    ``model_check``: on an emulated host, compare the model's counts with the
    feature and design tests' (a suite run has none of those: it leaves it out).
    """
    work.mkdir(parents=True, exist_ok=True)
    exp, notes = expectations_for(host, plan, tests, patched, baseline,
                                  built_kernel=built_kernel, checks=checks, traits=traits,
                                  model_check=model_check)
    report = evaluate(host, run, tests, {n: plan.kind(n) for n in tests}, exp)
    _evidence(report, host, run, emulator, exp)
    report.built_kernel = runs_built_kernel(host) if built_kernel is None else built_kernel
    report.notes.extend(notes)
    out = parse_output(run.output)
    for name, text in (("guest.ktap", out.ktap_text), ("dmesg.txt", out.dmesg)):
        if text.strip():
            (work / name).write_text(text)
            report.logs[name.split(".")[0]] = work / name
    return report


def _evidence(report: HostReport, host: Host, run: GuestRun,
              emulator: emulators.Emulator | None,
              expectations: dict[str, Expectation]) -> None:
    """How the host ran (hardware or emulated), and the model's counts against the tests'."""
    if host.transport == "qemu" and run.accel == "tcg":
        report.evidence = "emulated"
        report.emulator = {"qemu": "the machine's qemu-system-x86_64 (TCG)",
                           "model": f"-cpu {host.qemu.cpu if host.qemu else '?'}"}
    if not host.emulated_feature:
        return
    if emulator is not None:
        report.emulator = emulator.describe()
    counts = model.read_trace(run.logs["model_trace"]) if "model_trace" in run.logs else None
    if counts is not None:
        report.model = counts.to_json()
    expected = expectations.get(CHECK_MODEL)
    if expected is None or not report.tests:  # not asked, or the host ran nothing
        return
    seen = model.reported({t.name: t.output for t in report.tests
                           if t.kind in (Kind.FEATURE, Kind.DESIGN)})
    status, reason = (model.judge(counts, seen) if not report.infra_error else
                      (Status.ERROR, "the host failed: the model's counts were not compared"))
    after = sum(t.kind is Kind.CHECK for t in report.tests)  # beside the other checks
    report.tests.insert(after, TestOutcome(CHECK_MODEL, Kind.CHECK, status, reason, expected))


def state_line(report: HostReport) -> str:
    """PASS / FAIL / INFRA with the count or the reason, for the progress board."""
    bad = sum(not t.ok for t in report.tests)
    return {"pass": f"PASS ({len(report.tests)} as expected)",
            "fail": f"FAIL ({bad} of {len(report.tests)} not as expected)",
            "infra": f"INFRA ({report.infra_error})"}[report.verdict]


def _run_host(host: Host, p: Prepared, work: Path, reporter: _Locked, patched: bool,
              baseline: Baseline | None) -> HostReport:
    work.mkdir(parents=True, exist_ok=True)
    how = f"booting ({p.accel.name})" if host.transport == "qemu" and p.accel else "running"
    reporter.update(f"{host.name}: {how}")
    try:
        if host.emulated_feature and p.emulator is None:
            raise KseriesError(f"{host.name}: {p.emulator_error or 'no emulator'}",
                               exit_code=3)
        run = _transport(host, p, work)
    except KseriesError as exc:
        run = GuestRun(output="", infra_error=str(exc))
    except OSError as exc:  # a file that vanished, a full disk: still this host's failure
        run = GuestRun(output="", infra_error=f"{host.name}: {exc}")
    report = judge(host, run, p.plan, list(p.tests), work, patched=patched, baseline=baseline,
                   traits=p.traits, emulator=p.emulator)
    reporter.update(f"{host.name}: {state_line(report)} in {report.duration:.1f}s")
    return report


def _transport(host: Host, p: Prepared, work: Path) -> GuestRun:
    if host.transport == "qemu":
        assert p.kernel and p.initramfs and p.accel
        return qemu.run(host, p.kernel, p.initramfs, p.accel, work, p.emulator)
    if host.transport == "ssh":
        return ssh.run(host, p.tests, p.guest, work, kernel=p.kernel,
                       test_timeout=p.plan.test_timeout)
    return local.run(host, p.tests, p.guest, work, test_timeout=p.plan.test_timeout)
