"""`kseries run --suite NAME`: the KVM selftest suite on the base's kernel and the series',
compared test by test (run/suiterun.py), printed as a table.

The table shows every test whose result is worth a look (any failure, a
change, a flake); the tests that passed or skipped alike on both kernels are
counted. Each regression follows with its KTAP lines and the kernel log while
it ran. Exit 0 no regression, 2 a regression (a test or a new splat), 3 a
host failed to run the suite.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kseries.base import bases
from kseries.build import artifacts, suitetests
from kseries.cli.paths import KSELFTEST, TEMPLATES, series_dir
from kseries.errors import KseriesError
from kseries.progress import Reporter
from kseries.run import inventory, qemu, suite, suitejudge, suiteresults, suiterun
from kseries.run.identity import SeriesId
from kseries.run.ktap import Status
from kseries.run.suite import Verdict

STYLE = {Verdict.REGRESSION: "red", Verdict.FIXED: "green", Verdict.FLAKY: "yellow",
         Verdict.CHANGED: "cyan"}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", metavar="NAME[,NAME...]",
                   help="run KVM selftests on the unpatched base's kernel and the series', and "
                   "compare them test by test: a suite of the inventory ([suites]; 'all' is "
                   "every x86 KVM selftest the base builds) or test names")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="with --suite: run it N times per kernel, to tell flaky tests apart")
    p.add_argument("--reruns", type=int, metavar="N",
                   help="with --suite: run a test that failed on the series alone N more times "
                   "on both kernels before calling it a regression (default: the inventory's "
                   "[tests] reruns; 0: judge it as it came)")
    p.add_argument("--shards", type=int, metavar="N",
                   help="with --suite: guests per host and kernel (default: as wide as -j)")


def select(config: suite.SuiteConfig, wanted: str, built: list[str]) -> tuple[str, list[str]]:
    """The suite's name and tests: suites of ``config`` and test names, comma-separated."""
    items = [w.strip() for w in wanted.split(",") if w.strip()]
    if not items:
        raise KseriesError("--suite is empty", hint=f"suites: {', '.join(config.names())}")
    tests: list[str] = []
    for item in items:
        if item == suite.ALL or item in config.suites:
            tests += config.select(item, built)
        elif item in built:
            tests.append(item)
        else:
            raise KseriesError(f"--suite {item!r}: neither a suite nor a test the base builds",
                               hint=f"suites: {', '.join(config.names())}; tests: "
                               f"{', '.join(built[:4])}, ... ({len(built)})")
    order = {t: i for i, t in enumerate(built)}
    return ",".join(items), sorted(dict.fromkeys(tests), key=lambda t: order.get(t, len(order)))


def cmd_suite(args: argparse.Namespace, inv: inventory.Inventory,
              hosts: tuple[inventory.Host, ...], reporter: Reporter,
              identify: Callable[[Path, bool], SeriesId]) -> int:
    """``identify(kernel, patched)`` says what a kernel was built from (cli/run.py)."""
    if args.repeat < 1:
        raise KseriesError(f"--repeat {args.repeat}: a suite runs at least once",
                           hint="--repeat 1 or more")
    if args.reruns is not None and args.reruns < 0:
        raise KseriesError(f"--reruns {args.reruns}: a number of times, 0 or more",
                           hint="--reruns 0 judges a failure as it came")
    if args.shards is not None and args.shards < 1:
        raise KseriesError(f"--shards {args.shards}: at least one guest", hint="--shards 1")
    if args.lava or args.lava_results or args.baseline:
        raise KseriesError("--suite runs both kernels itself",
                           hint="leave out --lava, --lava-results and --baseline")
    config = suite.load_config(args.hosts, inv.plan.smoke)
    base = bases.resolve(args.base, TEMPLATES, install=args.kernel is None)
    built = suitetests.built_by_base(base)
    name, names = select(config, args.suite, built)
    if args.kernel is None:
        series = series_dir(args.series).resolve().name
        args.kernel = artifacts.load(base, "vm", series, patched=True).kernel
        if args.baseline_kernel is None:
            args.baseline_kernel = artifacts.load(base, "vm", series, patched=False).kernel
        tests = suitetests.binaries(base, TEMPLATES, series, names)
    else:
        tests = _from_dir(args.selftests, args.test, names)
    if args.baseline_kernel is None:
        raise KseriesError("--suite compares with the unpatched base's kernel",
                           hint="pass --baseline-kernel BZIMAGE (kseries build --unpatched)")
    for flag, path in (("--kernel", args.kernel), ("--baseline-kernel", args.baseline_kernel)):
        qemu.check_bzimage(path, flag)
    report = suiterun.run_suite(
        hosts, inv.plan, config, name, reporter=reporter, rounds=args.repeat, jobs=args.jobs,
        shards=args.shards, accel=args.accel, out_dir=args.output, kselftest=KSELFTEST,
        kernels=suiterun.Kernels(args.baseline_kernel, args.kernel), tests=tests,
        patched=not args.unpatched, reruns=args.reruns)
    ids = {suitejudge.BASE: identify(args.baseline_kernel, False),
           suitejudge.SERIES: identify(args.kernel, not args.unpatched)}
    suiteresults.write(report, ids, {suitejudge.BASE: args.baseline_kernel,
                                     suitejudge.SERIES: args.kernel})
    print_report(report)
    return report.exit_code


def _from_dir(selftests_dir: Path | None, explicit: list[str], names: list[str]) -> dict[
        str, Path]:
    found: dict[str, Path] = {}
    for item in explicit:
        test, _, path = item.partition("=")
        found[test] = Path(path)
    if selftests_dir is not None:
        if not selftests_dir.is_dir():
            raise KseriesError(f"{selftests_dir}: no such selftest directory")
        for n in names:
            hits = sorted(p for p in selftests_dir.rglob(n) if p.is_file())
            if hits and n not in found:
                found[n] = hits[0]
    missing = [n for n in names if n not in found]
    if missing:
        raise KseriesError(f"no binary for {len(missing)} test(s) of the suite: "
                           f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}",
                           hint="pass --selftests DIR holding them all, or leave out --kernel "
                           "to use kseries build's kernels (the suite is built from the tip)")
    return {n: found[n] for n in names}


def _statuses(results: list[suite.Result]) -> str:
    states = [r.status.value for r in results]
    if len(set(states)) == 1:
        return states[0] + (f" x{len(states)}" if len(states) > 1 else "")
    return " ".join(states)


def boring(c: suite.Comparison) -> bool:
    """Passed (or skipped) alike on both kernels, in every round."""
    return c.verdict is Verdict.SAME and all(
        r.status in (Status.PASS, Status.SKIP) for r in (*c.base, *c.series))


def print_report(report: suiterun.SuiteReport, stream: TextIO | None = None) -> None:
    console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=False, width=200)
    rounds = f", {report.rounds} rounds each" if report.rounds > 1 else ""
    t = Table(title=f"kseries suite {report.name}: {len(report.tests)} tests on the "
              f"unpatched base's kernel and the series'{rounds}", title_justify="left")
    for col in ("host", "test", "base", "series", "verdict", "why"):
        t.add_column(col, overflow="fold")
    for hs in report.hosts:
        for c in hs.comparisons:
            if boring(c):
                continue
            # Text, not markup: a reason may hold brackets ("[test_timeouts]")
            t.add_row(Text(hs.host.name), Text(c.test), Text(_statuses(c.base)),
                      Text(_statuses(c.series)),
                      Text(c.verdict.value, style=STYLE.get(c.verdict, "")), Text(c.why))
    console.print(t)
    for hs in report.hosts:
        n = suite.counts(hs.comparisons)
        alike = sum(boring(c) for c in hs.comparisons)
        console.print(f"{hs.host.name} ({hs.kinds[0]}): {len(hs.comparisons)} tests: "
                      + ", ".join(f"{k} {v}" for k, v in n.items() if v)
                      + f" ({alike} passed or skipped alike, not listed); splats: "
                      f"{len(hs.splats.new)} new, {len(hs.splats.same)} on both, "
                      f"{len(hs.splats.gone)} gone, {len(hs.splats.allowed)} allowed",
                      markup=False)
        for err in hs.infra:
            console.print(f"  INFRA {err}", markup=False)
        for c in hs.regressions:
            console.print(f"  regression: {c.test}: {c.why}", markup=False)
            for line in (next((r.output for r in c.series if r.status is not Status.PASS),
                              ()))[-15:]:
                console.print(f"    | {line}", markup=False)
            for line in suiteresults.kernel_log_around(hs, suitejudge.SERIES, c.test)[-15:]:
                console.print(f"    kernel: {line}", markup=False)
        for s in hs.splats.new:
            console.print(f"  new splat {s.where}: {s.identity}", markup=False)
            for line in s.lines[:12]:
                console.print(f"    kernel: {line}", markup=False)
        for s, why in hs.splats.allowed:
            console.print(f"  allowed splat {s.where}: {s.identity} ({why})", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    meaning = {0: "no regression", 2: "a regression", 3: "a host failed to run the suite"}
    console.print(f"suite: {report.seconds:.0f}s, {report.jobs} guest(s) at once; results: "
                  f"{report.out_dir} (suite.json, suite.ktap, summary.json); exit "
                  f"{report.exit_code}: {meaning[report.exit_code]}", markup=False)
