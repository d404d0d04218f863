"""`kseries pipeline`: the main job `make run` runs, stage by stage, with a summary.

render -> check -> build -> run -> submit. Each stage is the subcommand of the
same name, run with the pipeline's base; what users choose here is only which
stages run. A stage that errors stops the stages after it; findings (exit 2)
do not, so the summary shows them all (submit then refuses, as it should).
Submit reads the run's results: its Testing done block is what ran.

The build stage's first command, the unpatched base's vm kernel, needs nothing
check makes, so it starts when check does, as a process of its own at the
lowest CPU priority (nice 19): check's commands go first, and the base's build
takes the CPU they leave idle (checkpatch, sparse, Sphinx and make's serial
steps use one core of two). The build stage then follows its log until it
ends and goes on with the series' build. The emulated host's QEMU (`build
--emulator`), when the run stage will need it and it is not built yet, starts
beside check the same way; the run stage follows it before it boots. When check
stops the pipeline, or on Ctrl-C, both are stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.build import emulator
from kseries.cli.boundary import INTERRUPTED, run_command
from kseries.cli.paths import KSELFTEST
from kseries.cli.render import add_base_args
from kseries.cli.ui import ConsoleReporter
from kseries.errors import KseriesError
from kseries.run import inventory

EXIT_STATUS = {0: "PASS", 2: "FINDINGS", 3: "INFRA"}
# Which exit wins when stages end differently: an error (1, or any code not
# above) over an infrastructure failure (3), over findings (2), over a pass.
# The numbers' order is not it: a stage that errored after another one's
# findings still makes the pipeline exit 1.
SEVERITY = {0: 0, 2: 1, 3: 2}


def worse(a: int, b: int) -> int:
    """The more severe of two exit statuses (see SEVERITY; unknown codes are errors)."""
    return max(a, b, key=lambda c: SEVERITY.get(c, 3))


def stops(code: int) -> bool:
    """Whether a stage that ended with ``code`` stops the rest (findings do not)."""
    return code not in (0, 2)


@dataclass(frozen=True)
class Stage:
    name: str
    argv: tuple[tuple[str, ...], ...]  # one or more subcommand invocations


def stages(args: argparse.Namespace) -> list[Stage]:
    b = ("--base", args.base, "--series", args.series)
    out = args.output
    return [
        Stage("render", (("render", *b, "-o", str(out / "patches")),)),
        Stage("check", (("check", *b, "--json", str(out / "check.json")),)),
        # The base first: the series' build then moves the same worktree and
        # rebuilds only what the series changed.
        Stage("build", (("build", *b, "--profile", "vm", "--unpatched"),
                        ("build", *b, "--profile", "vm"))),
        Stage("run", (("run", *b, "-o", str(out / "results")),
                      ("run", *b, "--suite", MAKE_RUN_SUITE, "-o", str(out / "suite")))),
        Stage("submit", (("submit", *b, "-o", str(out / "outbox"), *_results(args)),)),
    ]


def _results(args: argparse.Namespace) -> tuple[str, ...]:
    """submit's --results: this pipeline's runs (the hosts, the suite), when they run or
    ran before."""
    wanted = [s.strip() for s in args.stages.split(",")]
    out: tuple[str, ...] = ()
    for results in (args.output / "results", args.output / "suite"):
        if "run" in wanted or (results / "summary.json").is_file():
            out += ("--results", str(results))
    return out


STAGE_NAMES = ("render", "check", "build", "run", "submit")
# The KVM selftest suite `make run` compares on both kernels (kselftest/hosts.toml,
# [suites]; the README says why not all of it).
MAKE_RUN_SUITE = "svm"
BESIDE_NICE = "19"  # the base's build beside check takes only the CPU check leaves idle


def _beside_check(args: argparse.Namespace, argv: tuple[str, ...], log_name: str) -> proc.Running:
    """Start a build command that needs nothing check makes as a process of its own."""
    log = args.output / log_name
    log.unlink(missing_ok=True)
    return proc.spawn(["nice", "-n", BESIDE_NICE, sys.executable, "-m", "kseries", *argv,
                       "--templates", str(args.templates)], log_to=log)


def _wants_emulator(args: argparse.Namespace) -> bool:
    """The run stage's inventory has a host on kseries' emulator that is not built yet."""
    try:
        hosts = inventory.load(KSELFTEST / "hosts.toml").hosts
        return (any(h.emulated_feature for h in hosts)
                and emulator.find(emulator.load_spec(KSELFTEST)) is None)
    except KseriesError:
        return False  # the run stage says what is wrong with it


def _finish(beside: proc.Running, what: str, stage: str = "build") -> int:
    """Follow a build begun beside check until it ends: print its output as it comes
    (a live status line on a terminal meanwhile); its exit status."""
    print(f"({what} began beside check, at nice {BESIDE_NICE}: {beside.log})", flush=True)
    reporter = ConsoleReporter()
    reporter.start(stage, f"{what}, begun beside check")
    last, pending = "started", ""
    with beside.log.open(encoding="utf-8", errors="replace") as log:
        log.readline()  # the command
        while True:
            ended = beside.ended()
            *lines, pending = (pending + log.read()).split("\n")  # whole lines only
            for line in lines:
                print(line, flush=True)
            last = lines[-1] if lines else last
            if ended:
                break
            if reporter.live:  # the status line's clock goes on
                reporter.update(last)
            time.sleep(1.0)
    if pending:
        print(pending, flush=True)
    code = beside.wait().returncode
    reporter.finish(f"{what} ended with exit {code}")
    return code


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pipeline", help="render, check, build, run and prepare the mails")
    add_base_args(p)
    p.add_argument("-o", "--output", type=Path, default=Path("kseries-out"),
                   help="directory for patches, reports, results and the outbox "
                   "(default: kseries-out)")
    p.add_argument("--stages", default=",".join(STAGE_NAMES),
                   help=f"comma-separated stages to run (default: {','.join(STAGE_NAMES)})")
    p.set_defaults(func=cmd_pipeline)


def cmd_pipeline(args: argparse.Namespace) -> int:
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGE_NAMES]
    if unknown:
        raise KseriesError(f"--stages: unknown stage {unknown[0]!r}",
                           hint=f"choose from {', '.join(STAGE_NAMES)}")
    parser: argparse.ArgumentParser = args.parser
    rows: list[tuple[str, str, float, str]] = []
    worst = 0
    stopped = ""
    plan = stages(args)
    build = next(s for s in plan if s.name == "build")
    beside: proc.Running | None = None
    emu: proc.Running | None = None  # the emulator's build, for the run stage
    try:
        for stage in plan:
            if stage.name not in wanted:
                rows.append((stage.name, "skipped", 0.0, ""))
                continue
            if stopped:
                rows.append((stage.name, "not run", 0.0, f"{stopped} failed"))
                continue
            print(f"\n=== {stage.name} ===", flush=True)
            if stage.name == "check" and "build" in wanted:
                args.output.mkdir(parents=True, exist_ok=True)
                beside = _beside_check(args, build.argv[0], "build-base.log")
            if stage.name == "check" and "run" in wanted and _wants_emulator(args):
                args.output.mkdir(parents=True, exist_ok=True)
                emu = _beside_check(args, ("build", "--emulator"), "build-emulator.log")
            if stage.name == "run" and emu is not None:  # its failure is the hosts' (infra)
                _finish(emu, "the emulator's build", "run")
                emu = None
            t0 = time.monotonic()
            code = 0
            what = " ".join(stage.argv[0])
            for argv in stage.argv:
                if beside is not None and stage.name == "build" and argv == build.argv[0]:
                    ended, beside = _finish(beside, "the base's build"), None
                    what += " (began beside check)"
                else:
                    sub = parser.parse_args([*argv, "--templates", str(args.templates)]
                                            if argv[0] in ("render", "check", "build")
                                            else list(argv))
                    ended = run_command(sub)
                if ended == INTERRUPTED:  # Ctrl-C: no later stage runs
                    return ended
                code = worse(code, ended)
                if stops(code):  # the series' build needs the base's to have worked
                    break
            status = EXIT_STATUS.get(code, "ERROR")
            rows.append((stage.name, status, time.monotonic() - t0, what))
            if stops(code):
                stopped = stage.name
                if beside is not None:  # check stopped the pipeline: no build follows
                    beside.stop()
                    beside = None
            worst = worse(worst, code)
    finally:
        for left in (beside, emu):
            if left is not None:  # interrupted, or an error left it running
                left.stop()
    print("\nsummary:")
    for name, status, secs, what in rows:
        took = f"{secs:7.1f}s" if secs else "        "
        print(f"  {name:<8} {status:<9} {took}  {what}")
    print(f"output: {args.output}")
    return worst
