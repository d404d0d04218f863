"""`kseries run`: the built kernel and selftests on a matrix of hosts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kseries.base import bases
from kseries.build import artifacts
from kseries.cli.paths import KSELFTEST, TEMPLATES, series_dir
from kseries.cli.render import add_series_arg
from kseries.cli.suite import add_args as add_suite_args
from kseries.cli.suite import cmd_suite
from kseries.cli.ui import done, drawn, interactive
from kseries.errors import KseriesError
from kseries.render.manifest import load as load_manifest
from kseries.run import (
    harness,
    identity,
    initramfs,
    inventory,
    lava,
    lava_results,
    model,
    qemu,
    results,
)
from kseries.run.qemu import Accel

STATE_STYLE = {"PASS": "green", "FAIL": "red", "INFRA": "magenta"}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the kernel and selftests on hosts (qemu, ssh, local)",
                       description="Boot the built kernel / run the selftests on every host of "
                       "an inventory and compare each result with what the host should do. "
                       "Exit: 0 as expected, 2 a test was not, 3 a host failed.")
    p.add_argument("--base", default="debian:6.12",
                   help="the base the kernel was built from (recorded in the results)")
    add_series_arg(p)
    p.add_argument("--hosts", type=Path, default=KSELFTEST / "hosts.toml",
                   help="host inventory (default: kselftest/hosts.toml)")
    p.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="run only this host (repeatable)")
    p.add_argument("--kernel", type=Path, default=_env_path("KSERIES_KERNEL"),
                   help="the vm-profile bzImage (default: $KSERIES_KERNEL)")
    p.add_argument("--selftests", type=Path, default=_env_path("KSERIES_SELFTESTS"),
                   help="directory of static selftest binaries, searched by test name "
                   "(default: $KSERIES_SELFTESTS)")
    p.add_argument("--test", action="append", default=[], metavar="NAME=PATH",
                   help="a test binary by path (repeatable; overrides --selftests)")
    p.add_argument("--unpatched", action="store_true",
                   help="the kernel is the base's own (no /proc/cpuinfo virt line expected)")
    p.add_argument("--baseline", type=Path, metavar="DIR",
                   help="results of the same run on the unpatched base, for the smoke tests")
    p.add_argument("--baseline-kernel", type=Path, metavar="BZIMAGE",
                   help="run this unpatched base kernel first and use it as the baseline")
    p.add_argument("-o", "--output", type=Path, default=Path("kseries-results"),
                   help="results directory (default: ./kseries-results)")
    p.add_argument("-j", "--jobs", type=int, help="hosts at once (default: bounded by cores)")
    p.add_argument("--accel", choices=inventory.ACCELS,
                   help="override every qemu host's accelerator (default: the inventory's)")
    p.add_argument("--lava", action="store_true",
                   help="write one LAVA job definition per host instead of running")
    p.add_argument("--lava-url", default="", metavar="URL",
                   help="where the lab fetches bzImage and initramfs.cpio (default: file://)")
    p.add_argument("--lava-results", type=Path, metavar="DIR",
                   help="instead of running, judge what LAVA jobs recorded: the dispatcher's "
                   "output directory (job log, result.yaml, the job), a server's export, "
                   "or a directory of such directories")
    add_suite_args(p)
    p.set_defaults(func=cmd_run)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def find_tests(plan: inventory.TestPlan, selftests: Path | None,
               explicit: list[str]) -> dict[str, Path]:
    """name -> binary for the plan's tests found in ``selftests``, then ``--test`` ones."""
    found: dict[str, Path] = {}
    if selftests is not None:
        if not selftests.is_dir():
            raise KseriesError(f"{selftests}: no such selftest directory")
        for name in plan.names():
            hits = sorted(p for p in selftests.rglob(name) if p.is_file())
            if hits:
                found[name] = hits[0]
    for item in explicit:
        name, sep, path = item.partition("=")
        if not sep or not name:
            raise KseriesError(f"--test {item!r}", hint="use --test NAME=PATH")
        found[name] = Path(path)
    if not found:
        raise KseriesError("no selftest binaries given",
                           hint="pass --selftests DIR (from kseries build) or --test NAME=PATH")
    return found


class HostBoard:
    """A Reporter showing one line per host: a live table on a terminal, lines in CI."""

    def __init__(self, hosts: list[str], stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.live_mode = interactive(stream)
        self.states = dict.fromkeys(hosts, "waiting")
        self.status = ""  # the latest message that is not about one host
        self.title = ""
        self.t0 = time.monotonic()
        self.live: Live | None = None

    def _table(self) -> Table:
        t = Table(title=Text(self.status or self.title), title_justify="left", box=None)
        t.add_column("host")
        t.add_column("state")
        for host, state in self.states.items():
            word = state.split(" ", 1)[0]
            t.add_row(Text(host), Text(state, style=STATE_STYLE.get(word, "yellow")))
        return t

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())

    def start(self, step: str, detail: str = "") -> None:
        self.title = f"{step}: {detail}"
        if self.live_mode and self.live is None:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4)
            drawn(self.live)
        elif not self.live_mode:
            self.console.print(f"[{step}] {detail}", markup=False)

    def update(self, detail: str) -> None:
        host, sep, state = detail.partition(": ")
        if sep and host in self.states:
            self.states[host] = state
            self.status = ""
        else:
            self.status = detail
        if self.live_mode:
            self._refresh()
        else:
            self.console.print(f"[run] {detail}", markup=False)

    def finish(self, status: str, detail: str = "") -> None:
        if self.live is not None:
            self._refresh()
            done(self.live)
            self.live = None
        secs = int(time.monotonic() - self.t0)
        self.console.print(f"[run] {status} ({secs // 60}:{secs % 60:02d}) {detail}",
                           markup=False)

    def note(self, message: str) -> None:
        self.console.print(f"note: {message}", markup=False)


def print_table(report: results.RunReport, stream: TextIO | None = None) -> None:
    console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=False, width=200)
    t = Table(title=f"kseries run: {report.kernel}", title_justify="left")
    for col in ("host", "test", "expected", "actual", "", "reason"):
        t.add_column(col, overflow="fold")
    for r in results.rows(report):
        mark = "[green]ok[/]" if r.ok else "[red]MISMATCH[/]" if r.kind != "infra" else (
            "[magenta]INFRA[/]")
        t.add_row(r.host, r.test, r.expected, r.actual, mark, r.reason)
    console.print(t)
    for h in report.hosts:
        console.print(f"{h.host.name}: {h.verdict.upper()} in {h.duration:.1f}s"
                      f"{' (' + h.accel + ')' if h.accel else ''}; {h.kernel_note}", markup=False)
        if h.infra_error:
            console.print(f"  console tail of {h.host.name}:", markup=False)
            for line in h.console_tail[-15:]:
                console.print(f"  | {line}", markup=False)
        if model.emulated_by(h.emulator):
            console.print(f"  EMULATED: {model.emulated_by(h.emulator)}: evidence about the "
                          "kernel code, not about silicon", markup=False)
        if h.model:
            console.print(f"  the model counted {model.counted(h.model)}", markup=False)
        for n in h.notes:
            console.print(f"  note: {n}", markup=False)
    for n in report.notes:
        console.print(f"note: {n}", markup=False)
    sid = report.series
    what = (f"{sid.name} v{sid.version} at {sid.tip[:12]}" if sid.tip else
            "the unpatched base" if not sid.patched else "series tip unknown")
    console.print(f"tested: {what} on {sid.base_describe or sid.base_label or '?'}, kernel "
                  f"sha256 {sid.kernel_sha256[:16] or '-'}", markup=False)
    meaning = {0: "every host did what was expected", 2: "a test result was not as expected",
               3: "a host failed (infrastructure)"}[report.exit_code]
    console.print(f"results: {report.out_dir} (summary.json, junit.xml, results.ktap); "
                  f"exit {report.exit_code}: {meaning}", markup=False)


def from_build(args: argparse.Namespace) -> dict[str, Path]:
    """Kernel, tests and baseline from `kseries build` of --base, where none were given."""
    base = bases.resolve(args.base, TEMPLATES)
    name = series_dir(args.series).resolve().name
    built = artifacts.load(base, "vm", name, patched=not args.unpatched)
    args.kernel = built.kernel
    if not args.unpatched and args.baseline is None and args.baseline_kernel is None:
        try:
            args.baseline_kernel = artifacts.load(base, "vm", name, patched=False).kernel
        except KseriesError:
            args.baseline_kernel = None  # no unpatched build: absolute results only
    return dict(built.selftests)


def identify(args: argparse.Namespace, kernel: Path | None, *,
             patched: bool) -> identity.SeriesId:
    """What ``kernel`` was built from, for the results (the base is not imported for it)."""
    templates = getattr(args, "templates", TEMPLATES)
    try:
        base: bases.Base | None = bases.resolve(args.base, templates, install=False)
    except KseriesError:
        base = None
    manifest = load_manifest(series_dir(args.series))
    return identity.identify(kernel, base, args.base, manifest, patched=patched)


def cmd_run(args: argparse.Namespace) -> int:
    inv = inventory.load(args.hosts)
    hosts = inv.select(args.host)
    if args.suite is None and (args.repeat != 1 or args.shards is not None
                               or args.reruns is not None):
        raise KseriesError("--repeat, --reruns and --shards go with --suite",
                           hint="e.g. kseries run --suite all --repeat 3")
    if args.suite is not None:
        return cmd_suite(args, inv, hosts, HostBoard([h.name for h in hosts]),
                         lambda kernel, patched: identify(args, kernel, patched=patched))
    if args.lava_results:
        return _read_lava(args, inv)
    if args.kernel is None and args.selftests is None and not args.test:
        tests = from_build(args)
    else:
        tests = find_tests(inv.plan, args.selftests, args.test)
    out: Path = args.output
    if args.lava:
        return _write_lava(args, inv, hosts, tests, out)
    for flag in ("kernel", "baseline_kernel"):  # before any QEMU starts
        if getattr(args, flag) is not None:
            qemu.check_bzimage(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.kernel is None and any(h.transport == "qemu" for h in hosts):
        raise KseriesError(f"no kernel for the qemu hosts (base {args.base})",
                           hint="pass --kernel BZIMAGE (the vm profile of kseries build) "
                           "or set KSERIES_KERNEL")
    baseline = results.load_baseline(args.baseline) if args.baseline else None
    accel: str | Accel | None = args.accel
    if args.baseline_kernel:
        board = HostBoard([h.name for h in hosts])
        qemu_hosts = [h for h in hosts if h.transport == "qemu"]
        if qemu_hosts:  # probe /dev/kvm once for both runs
            accel = harness.decide_accel(qemu_hosts, args.baseline_kernel, KSELFTEST,
                                         out / "accel-probe", board, args.accel)
        board.note(f"baseline: the same run on {args.baseline_kernel} (unpatched)")
        base_report = harness.run_hosts(
            hosts, inv.plan, kernel=args.baseline_kernel, tests=tests, out_dir=out / "baseline",
            kselftest=KSELFTEST, reporter=board, patched=False, jobs=args.jobs, accel=accel,
            series=identify(args, args.baseline_kernel, patched=False))
        baseline = results.Baseline.from_report(base_report)
    board = HostBoard([h.name for h in hosts])
    report = harness.run_hosts(
        hosts, inv.plan, kernel=args.kernel, tests=tests, out_dir=out, kselftest=KSELFTEST,
        reporter=board, patched=not args.unpatched, baseline=baseline, jobs=args.jobs,
        accel=accel, series=identify(args, args.kernel, patched=not args.unpatched),
        traits=inventory.series_traits(series_dir(args.series) / "series.toml"))
    report.notes.append(f"base: {args.base}")
    if not report.series.tip and report.series.patched:
        report.notes.append(f"series: {report.series.how}")
        report.notes.append("submit counts these results only if it has a build of the tip "
                            "with the same kernel sha256")
    print_table(report)
    return report.exit_code


def _read_lava(args: argparse.Namespace, inv: inventory.Inventory) -> int:
    baseline = results.load_baseline(args.baseline) if args.baseline else None
    report = lava_results.run_report(args.lava_results, inv, args.output,
                                     patched=not args.unpatched, baseline=baseline,
                                     host=args.host[0] if len(args.host) == 1 else "")
    results.write(report)
    report.notes.append(f"base: {args.base}")
    print_table(report)
    return report.exit_code


def _write_lava(args: argparse.Namespace, inv: inventory.Inventory,
                hosts: tuple[inventory.Host, ...], tests: dict[str, Path], out: Path) -> int:
    if args.kernel is None:
        raise KseriesError("--lava needs the kernel the jobs boot", hint="pass --kernel BZIMAGE")
    qemu.check_bzimage(args.kernel, "--kernel")  # the lab would find out only at boot
    guest = initramfs.GuestFiles.from_dir(KSELFTEST)
    d = out / "lava"
    rd = initramfs.build(d / "initramfs.cpio", tests, guest=guest,
                         test_timeout=inv.plan.test_timeout)
    base = args.lava_url.rstrip("/")
    kernel_url = f"{base}/bzImage" if base else args.kernel.resolve().as_uri()
    rd_url = f"{base}/initramfs.cpio" if base else rd.resolve().as_uri()
    accel = Accel("kvm", "--accel kvm") if args.accel == "kvm" else Accel("tcg", "default")
    paths = lava.write_jobs(hosts, inv.plan, d, kernel_url=kernel_url, initramfs_url=rd_url,
                            accel=accel, tests=list(tests))
    for p in paths:
        print(p)
    print(f"initramfs: {rd}" + (f" (publish it and {args.kernel} under {base}/)" if base else ""))
    print(f"submit: lavacli jobs submit {d}/<host>.yaml")
    return 0
