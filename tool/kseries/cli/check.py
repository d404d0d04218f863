"""`kseries check`: every check on a series, as a patch x check table.

Exit codes: 0 clean (PASS, WARN and SKIP only), 2 findings (a FAIL), 1 the tool
or its environment failed (an ERROR, or an error before the checks ran).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from kseries.base import bases
from kseries.build import matrix
from kseries.check import checklist
from kseries.check import report as reports
from kseries.cli.paths import KSELFTEST, default_out, series_dir
from kseries.cli.render import add_base_args
from kseries.cli.ui import ConsoleReporter
from kseries.render.manifest import load as load_manifest

_WIDTH = 44


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    names = ", ".join(c.name for c in checklist.CHECKS)
    p = sub.add_parser(
        "check", help="check a series like a kernel CI bot (table of patch x check)",
        description=f"Checks: {names}. Exit 0 clean, 2 findings, 1 tool failure.")
    add_base_args(p)
    p.add_argument("mailbox", nargs="?", type=Path, metavar="PATCHES",
                   help="a directory of .patch files, or an mbox (b4 am output, a saved "
                        "thread); default: the --series rendered for the base")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report there")
    p.add_argument("--only", action="append", default=[], metavar="CHECK",
                   help="run only these checks (repeat, or comma-separate)")
    p.add_argument("--skip", action="append", default=[], metavar="CHECK",
                   help="skip these checks (repeat, or comma-separate)")
    p.add_argument("--profile", action="append", default=[], metavar="PROFILE",
                   help="build only in these profiles of the series' build matrix (repeat, "
                        "or comma-separate; default: the whole matrix, see series.toml)")
    p.add_argument("--fast", action="store_true",
                   help=f"skip the build checks ({', '.join(checklist.BUILD)})")
    p.set_defaults(func=cmd_check)


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def cmd_check(args: argparse.Namespace) -> int:
    skip = _names(args.skip) + (list(checklist.BUILD) if args.fast else [])
    names = checklist.select(_names(args.only), skip)
    reporter = ConsoleReporter()
    series = series_dir(args.series)
    # a --profile outside the matrix is refused before the base is read
    matrix.select(args.templates, load_manifest(series).matrix, _names(args.profile))
    base = bases.resolve(args.base, args.templates)
    with tempfile.TemporaryDirectory(prefix="kseries-check-") as tmp:
        ctx = checklist.prepare(base, args.templates, series, KSELFTEST, args.mailbox,
                                Path(tmp), out_dir=default_out(base, series.resolve().name),
                                reporter=reporter, profiles=_names(args.profile))
        report = checklist.run(ctx, names, default=args.mailbox is None)
    print_report(report)
    if args.json:
        reports.write_json(report, args.json)
        print(f"report: {args.json}")
    left_out = [n for n in checklist.FAST if n not in names]
    saved = None if left_out else reports.save_verdict(report)
    if saved:
        print(f"verdict: {report.status} ({saved})")
    elif left_out:
        print(f"verdict: {report.status} (not saved for submit: {', '.join(left_out)} "
              "did not run)")
    else:
        print(f"verdict: {report.status} (not saved: no tip, the series did not apply)")
    return report.exit_code


def print_report(report: reports.Report, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    kind = "kseries' series, against the manifest" if report.own else "against kernel conventions"
    print(f"{report.source} on {report.base.describe} ({kind})", file=out)
    table = report.table()
    widths = [max(len(c) for c in col) for col in zip(*table, strict=True)]
    widths[0] = min(widths[0], _WIDTH)
    for i, line in enumerate(table):
        label = line[0] if len(line[0]) <= _WIDTH else line[0][: _WIDTH - 1] + "…"
        cells = [label.ljust(widths[0])] + [c.ljust(w) for c, w in
                                            zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip(), file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)
    problems = report.problems()
    if problems:
        print("", file=out)
    for cell in problems:
        where = "series" if cell.row == 0 else f"patch {cell.row}"
        print(f"{cell.status} {cell.check} ({where}): {cell.reason}", file=out)
        for d in cell.details:
            if d != cell.reason and not cell.reason.endswith(d):
                print(f"    {d}", file=out)
    counts = {s: sum(1 for c in report.cells if c.status == s) for s in reports.STATUSES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    secs = sum(report.seconds.values())
    print(f"\n{report.status.upper()}: {summary} in {secs:.1f}s", file=out)
