"""`kseries submit` (an outbox for git send-email, or a b4 prep branch) and `kseries diff`.

Nothing is sent: submit writes the mails (or a branch) and says how to send them.
It holds the series to its manifest's [[gate]] rules, and writes the cover
letter's Testing done block from the check record and the ``--results`` runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kseries.base import bases, workspace
from kseries.base.cache import cache_root
from kseries.cli.paths import DEFAULT_SERIES, KSELFTEST, TEMPLATES, series_dir
from kseries.cli.render import add_base_args
from kseries.cli.ui import ConsoleReporter
from kseries.errors import KseriesError
from kseries.progress import Reporter
from kseries.render import backport, manifest
from kseries.render import series as rendering
from kseries.render.manifest import CheckRule, Person
from kseries.run import records
from kseries.submit import b4 as b4prep
from kseries.submit import evidence, gate, outbox, rangediff, recipients, sender, testing


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "submit", help="write the checked series as mails for git send-email, or a b4 branch",
        description="Write the mails (or, with --b4, a `b4 prep` branch); nothing is sent. "
                    "The cover letter's Testing done block is written from what ran on the "
                    "tip: the last `kseries check` and the --results runs. Exit 2 when the "
                    "series' testing rules ([[gate]] in its manifest) are not met, unless "
                    "--force.")
    add_base_args(p)
    p.add_argument("-o", "--output", type=Path, metavar="OUTBOX",
                   help="directory for the mails (default: the cache, per base)")
    p.add_argument("-v", "--reroll", type=int, metavar="N", dest="reroll",
                   help="version N: [PATCH vN m/n] (default: the manifest's)")
    rfc = p.add_mutually_exclusive_group()
    rfc.add_argument("--rfc", dest="rfc", action="store_true", default=None,
                     help="add the RFC prefix")
    rfc.add_argument("--no-rfc", dest="rfc", action="store_false",
                     help="remove the RFC prefix")
    p.add_argument("--from", dest="sender", metavar='"NAME <EMAIL>"',
                   help="who sends the series (default: git's user.name and user.email, "
                        "else the manifest's sender); a patch they do not sign last gets "
                        "their Signed-off-by")
    p.add_argument("--stable", nargs="?", const="", metavar="TREE",
                   help="send the merged series as a backport to TREE (e.g. 6.6.y): "
                        "[PATCH TREE n/m], each patch naming its upstream commit, with "
                        "what was adapted for the base in a note above the sender's "
                        "Signed-off-by")
    p.add_argument("--range-diff-against", metavar="BASE-or-DIR",
                   help="put a range-diff into the cover letter, against the series rendered "
                        "for another base, or against a directory of an earlier rendering")
    p.add_argument("--creation-factor", type=int, metavar="N",
                   help="git range-diff --creation-factor (default: git's against a "
                        "directory, 100 against another base)")
    p.add_argument("--b4", action="store_true",
                   help="create a `b4 prep` branch b4/<series> in --repo instead of an outbox")
    p.add_argument("--repo", type=Path, help="repository for --b4")
    p.add_argument("--results", action="append", default=[], type=Path, metavar="DIR",
                   help="results of `kseries run -o DIR`, here or in a lab (repeatable); "
                        "runs of another tip or base are left out, with the reason")
    p.add_argument("--testing-notes", type=Path, metavar="FILE",
                   help="your own manual testing, printed in the cover letter as your "
                        "statement")
    p.add_argument("--dry-run", action="store_true",
                   help="print the gate's state and the Testing done block; write nothing "
                        "(exit 2 if a rule is not met)")
    p.add_argument("--force", action="store_true",
                   help="submit although testing rules are not met (the cover letter's Not "
                        "tested list names them); with --b4, replace the branch")
    p.set_defaults(func=cmd_submit)

    d = sub.add_parser(
        "diff", help="range-diff of the series between two bases (or earlier renderings)",
        description="git range-diff of the series rendered for the first --base against the "
                    "second. Either may be a directory of an earlier rendering.")
    d.add_argument("--base", action="append", default=[], metavar="BASE-or-DIR",
                   help="the old, then the new; once (or not at all: debian:6.12) to compare "
                        "two series on one base")
    d.add_argument("--series", action="append", default=[], metavar="NAME",
                   help="the old, then the new (e.g. --series v2 --series merged); once, "
                        "or not at all (v2), to compare one series on two bases")
    d.add_argument("--creation-factor", type=int, metavar="N",
                   help="git range-diff --creation-factor (default: 100 between bases, to "
                        "pair patches even when the adaptation changed much of them; 80 "
                        "between two series, which pairs the patches that kept their "
                        "purpose and shows the others as dropped or new)")
    d.add_argument("--templates", type=Path, default=TEMPLATES,
                   help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_diff)


def _render(spec: str, templates: Path, series: Path, out: Path, reporter: Reporter,
            version: int | None = None, rfc: bool | None = None,
            sender: Person | None = None, stable: str | None = None,
            ) -> rendering.RenderedSeries:
    base = bases.resolve(spec, templates)
    return rendering.render(base, series, KSELFTEST, out, reporter, version=version, rfc=rfc,
                            sender=sender, stable=stable)


def _backport(args: argparse.Namespace, templates: Path, chosen: Path, tmp: Path,
              reporter: Reporter, sender: Person | None,
              ) -> tuple[rendering.RenderedSeries, rendering.RenderedSeries]:
    """The backport, and the series it carries as checked (the same tree at every patch):
    the records of what ran are those of the checked series' tip."""
    if args.reroll is not None or args.rfc is not None:
        raise KseriesError("--stable takes no version or RFC label: a backport is "
                           "[PATCH TREE n/m]")
    backport.check_request(manifest.load(chosen), args.stable)  # before anything is rendered
    checked = _render(args.base, templates, chosen, tmp / "checked", reporter)
    series = _render(args.base, templates, chosen, tmp / "series", reporter,
                     sender=sender, stable=args.stable)
    for a, b in zip(checked.commits, series.commits, strict=True):
        if workspace.git(checked.repo, "rev-parse", f"{a}^{{tree}}").stdout != \
                workspace.git(series.repo, "rev-parse", f"{b}^{{tree}}").stdout:
            raise KseriesError(f"the backport's commit {b[:12]} differs in code from the "
                               f"series' {a[:12]}", hint="this is a bug of kseries")
    return series, checked


def _is_rendering(spec: str) -> bool:
    path = Path(spec)
    return path.is_dir() and any(path.glob("*.patch"))


def refusal(state: gate.State, series: rendering.RenderedSeries) -> str:
    """One line for a rule that is not met: which, what the records show, what to do."""
    where = f"rule {state.number} of {series.manifest.path or 'the manifest'}"
    if isinstance(state.rule, CheckRule):
        todo = (f"run: kseries check --base {series.base.label} (and fix what it finds), "
                "or submit anyway with --force")
    else:
        todo = "add --results DIR of a `kseries run` on such a host, or submit anyway with --force"
    return (f"gate: {state.asks} ({where}), for the series on {series.base.label} "
            f"(tip {series.tip[:12]}): {state.found}; {todo}")


def print_gate(states: tuple[gate.State, ...], ev: evidence.Evidence,
               series: rendering.RenderedSeries) -> None:
    print(f"results of {series.tip[:12]}: {len(ev.runs)} run(s) counted, "
          f"{len(ev.left_out)} left out")
    for run in ev.runs:
        print(f"  counted: {run.path.parent} ({', '.join(h.name for h in run.hosts)})")
    for left in ev.left_out:
        print(f"  left out: {left.path}: {left.reason}")
    for note in ev.notes:
        print(f"  note: {note}")
    missing = sum(not s.met for s in states)
    print(f"gate of {series.manifest.path or 'the manifest'}: "
          + (f"{missing} of {len(states)} rule(s) not met" if missing else
             f"all {len(states)} rule(s) met"))
    for s in states:
        print(f"  {'met' if s.met else 'MISSING':<8} {s.number}. {s.line}")


def testing_done(series: rendering.RenderedSeries, runs: list[records.RunRecord], notes: str,
                 reporter: Reporter, checked: rendering.RenderedSeries | None = None,
                 ) -> tuple[tuple[gate.State, ...], str]:
    """The gate's state and the Testing done block, printed; the block's text returned.
    ``checked``: the series whose records count (a backport's, same code)."""
    checked = checked or series
    gate.validate(series.manifest.gate, series.manifest.path)
    reporter.start("testing", f"records of {checked.tip[:12]}")
    ev = evidence.gather(series.base, checked.tip, runs)
    states = gate.evaluate(series.manifest.gate, ev)
    text = testing.block(testing.Inputs(ev, gate.wanted(states, ev),
                                        tuple(rendering.summarize(series)),
                                        series.base.describe, notes))
    reporter.finish("DONE", f"check {'recorded' if ev.check else 'not recorded'}, "
                    f"{len(ev.runs)} run(s)")
    print_gate(states, ev, checked)
    print(f"\n{text}\n")
    return states, text


def cmd_submit(args: argparse.Namespace) -> int:
    if args.b4 and not args.repo:
        raise KseriesError("--b4 needs --repo PATH", hint="the repository to create b4/<name> in")
    templates = args.templates
    # Bad input first, before anything is rendered.
    notes = testing.read_notes(args.testing_notes) if args.testing_notes else ""
    runs = [records.load(path) for path in args.results]
    reporter = ConsoleReporter()
    who_sends = sender.resolve(args.sender)
    with tempfile.TemporaryDirectory(prefix="kseries-submit-") as tmp:
        chosen = series_dir(args.series)
        checked = None
        if args.stable is not None:
            series, checked = _backport(args, templates, chosen, Path(tmp), reporter, who_sends)
        else:
            series = _render(args.base, templates, chosen, Path(tmp) / "series", reporter,
                             args.reroll, args.rfc, sender=who_sends)
        states, text = testing_done(series, runs, notes, reporter, checked)
        missing = [s for s in states if not s.met]
        if args.dry_run:
            return 2 if missing else 0
        if missing and not args.force:
            for s in missing:
                print(f"kseries: {refusal(s, series)}", file=sys.stderr)
            return 2
        for s in missing:
            reporter.note(f"--force: {refusal(s, series)}")
        testing.put_into_cover(series.files[0], text)
        version = outbox.Version.of(series.manifest)
        gap = outbox.changelog_gap(series.manifest, version)
        if gap:
            reporter.note(gap)
        reporter.start("recipients", "scripts/get_maintainer.pl of the base")
        who = recipients.collect(series.base, series.manifest, series.files[1:])
        reporter.finish("DONE", f"{len(who.entries)} addresses")
        range_diff = None
        if args.range_diff_against:
            range_diff = _range_diff(series, args.range_diff_against, templates, chosen,
                                     Path(tmp), reporter, args.creation_factor)
        print_recipients(who)
        if args.b4:
            if range_diff:
                reporter.note("--range-diff-against is for the outbox; b4 makes its own")
            prepared = b4prep.prepare(series, who, args.repo, version, force=args.force)
            print_b4(prepared)
            return 0
        out = args.output or cache_root() / "outbox" / series.base.key / series.manifest.id
        box = outbox.write(series, who, out, version, range_diff=range_diff)
    print_outbox(box)
    return 0


def _range_diff(series: rendering.RenderedSeries, against: str, templates: Path, chosen: Path,
                tmp: Path, reporter: Reporter, creation_factor: int | None) -> tuple[str, str]:
    reporter.start("range-diff", against)
    if _is_rendering(against):
        result = rangediff.against(series, Path(against), creation_factor=creation_factor)
    else:
        other = _render(against, templates, chosen, tmp / "against", reporter)
        result = rangediff.against(series, other, creation_factor=creation_factor or 100)
    reporter.finish("DONE", f"against {result[0]}")
    return result


def print_recipients(who: recipients.Recipients) -> None:
    print(f"From: {who.sender}")
    width = max(len(r.ident) for r in who.entries) if who.entries else 0
    for r in who.entries:
        print(f"{r.header + ':':4} {r.ident:{width}}  {'; '.join(r.reasons)}")


def print_outbox(box: outbox.Outbox) -> None:
    print(f"{len(box.mails)} mails in {box.directory}:")
    for mail in box.mails:
        print(f"  {mail.path.name}")
        print(f"      {mail.subject}")
    print("send them with:")
    print(f"  git send-email --dry-run --confirm=never {box.directory}/*.patch   # look first")
    print(f"  git send-email {box.directory}/*.patch")


def print_b4(p: b4prep.Prepared) -> None:
    print(f"branch {p.branch} in {p.repo}: cover letter {p.cover[:12]}, tip {p.tip[:12]}")
    for key in ("cover-subject", "revision", "prefixes", "change-id", "series-range"):
        if key in p.info:
            print(f"  b4 {key}: {p.info[key]}")
    print("send it with b4, from a checkout of that branch:")
    print(f"  git -C {p.repo} switch {p.branch}")
    print("  b4 send --dry-run        # or: b4 send -o DIR")


def _pair(values: list[str], default: str, flag: str) -> tuple[str, str]:
    if len(values) > 2:
        raise KseriesError(f"kseries diff takes {flag} at most twice: the old, then the new")
    if not values:
        return default, default
    return (values[0], values[-1])


def cmd_diff(args: argparse.Namespace) -> int:
    if len(args.base) < 2 and len(args.series) < 2:
        raise KseriesError("kseries diff needs two of something to compare",
                           hint="e.g. --base debian:6.1 --base debian:6.12, "
                                "or --series v2 --series merged")
    old_spec, new_spec = _pair(args.base, "debian:6.12", "--base")
    old_dir, new_dir = (series_dir(s) for s in _pair(args.series, DEFAULT_SERIES, "--series"))
    factor = args.creation_factor or (80 if old_dir.resolve() != new_dir.resolve() else 100)
    reporter = ConsoleReporter()
    with tempfile.TemporaryDirectory(prefix="kseries-diff-") as tmp:
        if _is_rendering(new_spec):
            raise KseriesError(f"{new_spec}: the second --base must be a base to render",
                               hint="put the earlier rendering (the directory) first")
        new = _render(new_spec, args.templates, new_dir, Path(tmp) / "new", reporter)
        if _is_rendering(old_spec):
            label, text = rangediff.against(new, Path(old_spec), creation_factor=factor)
        else:
            old = _render(old_spec, args.templates, old_dir, Path(tmp) / "old", reporter)
            label, text = rangediff.against(new, old, creation_factor=factor)
    print(f"range-diff: {label} -> {rangediff.of_series(new).label}")
    print(text, end="")
    return 0
