"""`kseries pipeline`: the main job `make run` runs, stage by stage, with a summary.

render -> check -> build -> run -> submit, each as its own subcommand would do
it. A stage that fails stops the stages that need its output; the summary
says what ran, what it gave, and where its output is.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kseries.cli import render as render_cmd
from kseries.errors import KseriesError


@dataclass
class Stage:
    name: str
    status: str = "not run"
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Context:
    args: argparse.Namespace
    outputs: dict[str, object] = field(default_factory=dict)


StageFn = Callable[[Context], tuple[str, str]]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pipeline", help="render, check, build, run and prepare the mails")
    render_cmd.add_base_args(p)
    p.add_argument("-o", "--output", type=Path, help="directory for the patch files")
    p.add_argument("--stages", default=",".join(STAGE_NAMES),
                   help=f"comma-separated stages to run (default: {','.join(STAGE_NAMES)})")
    p.set_defaults(func=cmd_pipeline)


def stage_render(ctx: Context) -> tuple[str, str]:
    series = render_cmd.render_for(ctx.args, ctx.args.output)
    ctx.outputs["series"] = series
    render_cmd.print_series(series)
    return "DONE", f"{len(series.commits)} patches in {series.out_dir}"


STAGES: dict[str, StageFn] = {
    "render": stage_render,
}
STAGE_NAMES = tuple(STAGES)


def cmd_pipeline(args: argparse.Namespace) -> int:
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise KseriesError(f"--stages: unknown stage {unknown[0]!r}",
                           hint=f"choose from {', '.join(STAGE_NAMES)}")
    ctx = Context(args)
    results = []
    code = 0
    for name in STAGE_NAMES:
        stage = Stage(name)
        results.append(stage)
        if name not in wanted:
            stage.status = "skipped"
            continue
        if code:
            stage.status = "not run"
            stage.detail = "an earlier stage failed"
            continue
        t0 = time.monotonic()
        try:
            stage.status, stage.detail = STAGES[name](ctx)
        except KseriesError as exc:
            stage.status, stage.detail = "FAIL", str(exc)
            code = exc.exit_code or 1
        stage.seconds = time.monotonic() - t0
        if stage.status in ("FAIL", "FINDINGS"):
            code = code or 2
    print()
    print("summary:")
    for s in results:
        took = f"{s.seconds:6.1f}s" if s.seconds else "       "
        print(f"  {s.name:<8} {s.status:<9} {took}  {s.detail}")
    return code
