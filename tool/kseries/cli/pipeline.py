"""`kseries pipeline`: the main job `make run` runs, stage by stage, with a summary.

render -> check -> build -> run -> submit. Each stage is the subcommand of the
same name, run with the pipeline's base; what users choose here is only which
stages run. A stage that errors stops the stages after it; findings (exit 2)
do not, so the summary shows them all (submit then refuses, as it should).
Submit reads the run's results: its Testing done block is what ran.

When both check and build run, the build starts right after render, in a
child ``kseries build`` whose output goes to ``OUTPUT/build.log``: the vm
builds do not depend on the check, and the check leaves a core idle for long
stretches (configuring each profile, checkpatch, Sphinx, sparse on one file),
which make then uses. The build stage waits for it and shows its output.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kseries import proc
from kseries.cli.boundary import INTERRUPTED, run_command
from kseries.cli.render import add_base_args
from kseries.errors import KseriesError

EXIT_STATUS = {0: "PASS", 2: "FINDINGS", 3: "INFRA"}


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
        Stage("run", (("run", *b, "-o", str(out / "results")),)),
        Stage("submit", (("submit", *b, "-o", str(out / "outbox"), *_results(args)),)),
    ]


def _results(args: argparse.Namespace) -> tuple[str, ...]:
    """submit's --results: this pipeline's run, when it runs or ran before."""
    results = args.output / "results"
    wanted = [s.strip() for s in args.stages.split(",")]
    ran = "run" in wanted or (results / "summary.json").is_file()
    return ("--results", str(results)) if ran else ()


STAGE_NAMES = ("render", "check", "build", "run", "submit")


@dataclass
class Background:
    """A stage running as child ``kseries`` commands while the stages before it go on."""

    log: Path
    codes: list[int] = field(default_factory=list)
    seconds: float = 0.0
    thread: threading.Thread | None = None

    def start(self, argvs: list[list[str]]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.unlink(missing_ok=True)
        self.thread = threading.Thread(target=self._run, args=(argvs,), daemon=True)
        self.thread.start()

    def _run(self, argvs: list[list[str]]) -> None:
        t0 = time.monotonic()
        try:
            for argv in argvs:
                res = proc.run([sys.executable, "-m", "kseries", *argv], log_to=self.log,
                               check=False, what=f"kseries {argv[0]}")
                self.codes.append(res.returncode)
                if res.returncode not in (0, 2):
                    break
        except (KseriesError, OSError, KeyboardInterrupt) as exc:  # reported by wait()
            self.codes.append(INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1)
            with self.log.open("a") as fh:
                fh.write(f"kseries: error: {exc}\n")
        self.seconds = time.monotonic() - t0

    def wait(self) -> int:
        """Wait for the stage, show its output, and return its worst exit code."""
        assert self.thread is not None
        if self.thread.is_alive():
            print(f"[build] waiting for the build started after render (log: {self.log})",
                  flush=True)
        while self.thread.is_alive():  # joined in steps: Ctrl-C still reaches this thread
            self.thread.join(0.5)
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("$ "):  # the argv lines proc writes
                print(line)
        return max(self.codes, default=1)


def _subcommand(args: argparse.Namespace, argv: tuple[str, ...]) -> list[str]:
    return [*argv, "--templates", str(args.templates)] \
        if argv[0] in ("render", "check", "build") else list(argv)


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
    stopped, failed = "", 0
    all_stages = stages(args)
    build = next(s for s in all_stages if s.name == "build")
    background = None
    for stage in all_stages:
        if stage.name not in wanted:
            rows.append((stage.name, "skipped", 0.0, ""))
            continue
        if stopped and not (stage is build and background):
            rows.append((stage.name, "not run", 0.0, f"{stopped} failed"))
            continue
        print(f"\n=== {stage.name} ===", flush=True)
        t0 = time.monotonic()
        code = 0
        if stage is build and background:
            code = background.wait()
            took = background.seconds
        else:
            for argv in stage.argv:
                code = max(code, run_command(parser.parse_args(_subcommand(args, argv))))
                if code == INTERRUPTED:  # Ctrl-C: no later stage runs
                    return code
            took = time.monotonic() - t0
        if code == INTERRUPTED:
            return code
        status = EXIT_STATUS.get(code, "ERROR")
        rows.append((stage.name, status, took, " ".join(stage.argv[0])))
        if code not in (0, 2) and not stopped:
            stopped, failed = stage.name, code
        worst = max(worst, code)
        if stage.name == "render" and not stopped and {"check", "build"} <= set(wanted):
            background = Background(args.output / "build.log")
            background.start([_subcommand(args, argv) for argv in build.argv])
            print(f"\n[build] started in the background, beside the check "
                  f"(log: {background.log})", flush=True)
    print("\nsummary:")
    for name, status, secs, what in rows:
        shown = f"{secs:7.1f}s" if secs else "        "
        print(f"  {name:<8} {status:<9} {shown}  {what}")
    print(f"output: {args.output}")
    return failed if stopped else worst  # an error is not outweighed by findings (2)
