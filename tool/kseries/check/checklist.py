"""The list of checks, choosing among them, and running them into a Report.

``prepare`` reads the series (the rendering for the base by default, or patch
files / an mbox) and decides whether it is kseries' own (its subjects are the
manifest's): own series are also held to the manifest, others to kernel
conventions only. ``run`` runs the chosen checks and fills a Report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from kseries.base import workspace
from kseries.base.bases import Base
from kseries.build import matrix
from kseries.check import (
    applies,
    bisect,
    build,
    checkpatch,
    conventions,
    mailbox,
    manifest,
    recipients,
)
from kseries.check.context import Context, tree_lock
from kseries.check.report import ERROR, PASS, SKIP, WARN, Cell, Report
from kseries.errors import KseriesError
from kseries.progress import NullReporter, Reporter
from kseries.render import series as rendering
from kseries.render.manifest import Manifest
from kseries.render.manifest import load as load_manifest


@dataclass(frozen=True)
class Check:
    name: str
    func: Callable[[Context], Iterable[Cell]]
    summary: str
    tree: bool = False  # needs the base's worktree
    build: bool = False  # builds kernel code (minutes, not seconds)


# In table order. Checks run in RUN_ORDER: the tree's scripts run while the
# worktree is at the base, then git am moves it, then what needs the applied tip.
CHECKS = (
    Check("applies", applies.applies, "git am of each patch on a clean base", tree=True),
    Check("checkpatch", checkpatch.checkpatch, "the base's checkpatch.pl --strict", tree=True),
    Check("trailers", conventions.trailers, "Signed-off-by chain"),
    Check("prefix", conventions.prefix, "subject prefix of the touched subsystems"),
    Check("shape", conventions.shape, "numbering, cover letter, diffstat, base-commit"),
    Check("recipients", recipients.recipients, "To/Cc cover get_maintainer.pl"),
    Check("manifest", manifest.manifest, "kseries' series agrees with its manifest"),
    # The build checks git am the series first if applies did not run: they need the
    # worktree's lock too, which also keeps two runs from sharing one build directory.
    *(Check(name, func, summary, tree=True, build=True)
      for name, func, summary in build.CHECKS),
)
BY_NAME = {c.name: c for c in CHECKS}
RUN_ORDER = ("trailers", "prefix", "manifest", "checkpatch", "recipients", "applies", "shape",
             *(name for name, _, _ in build.CHECKS))
FAST = tuple(c.name for c in CHECKS if not c.build)
BUILD = tuple(c.name for c in CHECKS if c.build)


def select(only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[str]:
    """The checks to run, in table order; ``only``/``skip`` take names from CHECKS."""
    for name in (*only, *skip):
        if name not in BY_NAME:
            raise KseriesError(f"unknown check {name!r}",
                               hint=f"known checks: {', '.join(BY_NAME)}")
    chosen = [c.name for c in CHECKS if (not only or c.name in only) and c.name not in skip]
    if not chosen:
        raise KseriesError("no check left to run", hint="loosen --only / --skip")
    return chosen


def prepare(
    base: Base, templates: Path, series_dir: Path, kselftest: Path, series_path: Path | None,
    work: Path, *, out_dir: Path | None = None, reporter: Reporter | None = None,
    profiles: Sequence[str] = (),
) -> Context:
    """Read the series to check, and render kseries' own (``series_dir``) for comparison.

    The build checks build with the series' matrix, or the ``profiles`` of it.
    """
    wanted = load_manifest(series_dir)
    chosen = tuple(matrix.select(templates, wanted.matrix, profiles))
    ctx = _read(base, templates, series_dir, wanted, kselftest, series_path, work, out_dir,
                reporter or NullReporter())
    ctx.profiles = chosen
    return ctx


def _read(base: Base, templates: Path, series_dir: Path, wanted: Manifest, kselftest: Path,
          series_path: Path | None, work: Path, out_dir: Path | None,
          reporter: Reporter) -> Context:
    work.mkdir(parents=True, exist_ok=True)
    if series_path is None:
        # Read the files under the render's lock: another run may render into out_dir next.
        with workspace.writing(base):
            fresh = rendering.render(base, series_dir, kselftest, out_dir or work / "rendered",
                                     reporter)
            mails = mailbox.read_files(fresh.files, source=f"rendered for {base.label}")
        return Context(base, mails, templates, work, reporter, wanted, fresh)
    reporter.start("read", str(series_path))
    mails = mailbox.read(series_path)
    titles = [p.subject.title for p in mails.patches]
    own = titles == [p.subject for p in wanted.patches]
    reporter.finish("DONE", f"{len(mails.patches)} patches"
                    + (", kseries' own series" if own else ", checked against conventions"))
    if not own:
        return Context(base, mails, templates, work, reporter)
    rendered: rendering.RenderedSeries | None
    try:
        rendered = rendering.render(base, series_dir, kselftest, work / "rendered", reporter)
    except KseriesError as exc:
        reporter.note(f"cannot render kseries' series for comparison: {exc}")
        rendered = None
    return Context(base, mails, templates, work, reporter, wanted, rendered)


def rows(ctx: Context) -> list[str]:
    first = "0: cover letter" if ctx.series.cover else "0: series"
    return [first, *(f"{row}: {mail.subject.title}" for row, mail in ctx.rows())]


def run(ctx: Context, names: Sequence[str], *, default: bool = False) -> Report:
    """Run the ``names`` checks on ``ctx``; ``default``: the series is this run's rendering."""
    report = Report(ctx.base, ctx.series.source, ctx.own, rows(ctx), list(names))
    needs_tree = any(BY_NAME[n].tree for n in names)
    lock: AbstractContextManager[None] = (
        tree_lock(ctx.base) if needs_tree else nullcontext())
    with lock:
        for name in sorted(names, key=RUN_ORDER.index):
            check = BY_NAME[name]
            ctx.reporter.start(f"check {name}", check.summary)
            t0 = time.monotonic()
            try:
                for cell in check.func(ctx):
                    report.add(cell)
            except KseriesError as exc:
                report.add(Cell(name, 0, ERROR, str(exc)))
            report.seconds[name] = time.monotonic() - t0
            found = report.of(name)
            bad = [c for c in found if c.status not in (PASS, SKIP)]
            ctx.reporter.finish(report.worst(name), bad[0].reason if bad else "")
    if "shape" not in names and any(m.damage for m in ctx.series.patches):
        # A damaged patch is a finding whichever checks were chosen.
        report.checks.append("shape")
        for cell in conventions.damaged(ctx):
            report.add(cell)
    if ctx.rendered is not None and ctx.tip and ctx.tip != ctx.rendered.tip:
        report.add(Cell("applies", 0, WARN, f"git am of the patch files gives "
                        f"{ctx.tip[:12]}, not the rendered {ctx.rendered.tip[:12]}"))
    report.tip = ctx.rendered.tip if default and ctx.rendered else ctx.tip
    report.manifest = ctx.manifest
    if any(BY_NAME[n].build for n in names):
        report.profiles = tuple(bisect.chosen(ctx))
    if bisect.CHECK in report.checks:  # one column per profile of the matrix
        at = report.checks.index(bisect.CHECK)
        report.checks[at:at + 1] = [bisect.column(p.name) for p in bisect.chosen(ctx)]
    return report

