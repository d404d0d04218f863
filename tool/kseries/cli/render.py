"""`kseries render`, `kseries apply` and `kseries facts`."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from kseries.base import bases
from kseries.cli.paths import DEFAULT_SERIES, KSELFTEST, TEMPLATES, default_out, series_dir
from kseries.cli.ui import ConsoleReporter
from kseries.render import apply as applying
from kseries.render import series as rendering
from kseries.render.probe import probe


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("render", help="render the series for a base into patch files")
    add_base_args(p)
    p.add_argument("-o", "--output", type=Path, help="directory for the patch files "
                   "(default: the cache, per base)")
    p.set_defaults(func=cmd_render)

    a = sub.add_parser("apply", help="create a branch holding the series' commits")
    add_base_args(a)
    a.add_argument("--branch", required=True, help="name of the branch to create")
    a.add_argument("--repo", type=Path, help="repository to create it in "
                   "(default: the base's own repository)")
    a.add_argument("--force", action="store_true", help="replace an existing branch")
    a.set_defaults(func=cmd_apply)

    f = sub.add_parser("facts", help="show what kseries read from a base")
    add_base_args(f)
    f.set_defaults(func=cmd_facts)


def add_base_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="debian:6.12",
                   help="debian:6.X[=VERSION] or PATH[@REF] (default: debian:6.12)")
    add_series_arg(p)
    p.add_argument("--templates", type=Path, default=TEMPLATES, help=argparse.SUPPRESS)


def add_series_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", default=DEFAULT_SERIES, metavar="NAME",
                   help="v2 (the RFC as posted; the default), merged (as review settled "
                        "it), or the path of a series directory of your own")


def render_for(args: argparse.Namespace, out: Path | None = None) -> rendering.RenderedSeries:
    reporter = ConsoleReporter()
    series = series_dir(args.series)
    base = bases.resolve(args.base, args.templates)
    return rendering.render(base, series, KSELFTEST,
                            out or default_out(base, series.resolve().name), reporter)


def print_series(series: rendering.RenderedSeries) -> None:
    """Where the patches are, then one line per patch: subject, files, +/-."""
    print(f"{series.base.describe}: {len(series.commits)} patches and a cover letter "
          f"in {series.out_dir}")
    total = len(series.commits)
    for s in rendering.summarize(series):
        files = ", ".join(s.files)
        print(f"  {s.number}/{total} {s.subject}  [{files}; +{s.added} -{s.removed}]")


def cmd_render(args: argparse.Namespace) -> int:
    series = render_for(args, args.output)
    print_series(series)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    base = bases.resolve(args.base, args.templates)
    # Refuse the branch before the render, not after it.
    applying.check_branch(applying.target_repo(base, args.repo), args.branch, force=args.force)
    series = render_for(args)
    result = applying.create_branch(series, args.branch, repo=args.repo, force=args.force)
    print(f"branch {result.branch} at {result.commit[:12]} in {result.repo}"
          f" ({len(series.commits)} commits on {series.base.commit[:12]})")
    return 0


def cmd_facts(args: argparse.Namespace) -> int:
    base = bases.resolve(args.base, args.templates)
    facts = probe(rendering.base_reader(base))
    print(json.dumps({"base": base.describe, "commit": base.commit,
                      "facts": dataclasses.asdict(facts)}, indent=2))
    return 0
