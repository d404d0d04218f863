"""Checks of a series' mails against kernel conventions.

Trailers (Signed-off-by chain), subject prefixes and the series' shape
(numbering, cover letter, diffstat, base-commit). Agreement with kseries'
manifest is in check/manifest.py, recipients in check/recipients.py.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from email.utils import parseaddr
from pathlib import Path

from kseries.base import workspace
from kseries.check.context import Context
from kseries.check.mailbox import Mail, subsystem_prefix
from kseries.check.report import FAIL, PASS, WARN, Cell
from kseries.errors import KseriesError

_STAT_LINE = re.compile(r"^ (\S.*?)\s+\|\s+(\d+|Bin\b.*?)(?: [+-]+)?\s*$")
_STAT_SUMMARY = re.compile(r"^ (\d+) files? changed(?:, (\d+) insertions?\(\+\))?"
                           r"(?:, (\d+) deletions?\(-\))?")
_SHORTLOG_AUTHOR = re.compile(r"^(\S.*) \((\d+)\):$")


# --- Trailers --------------------------------------------------------------------


def trailers(ctx: Context) -> Iterable[Cell]:
    """The author signs off; Co-developed-by is followed by its Signed-off-by; the sender
    signs last."""
    cover = ctx.series.cover
    for row, mail in ctx.rows():
        # The cover letter's From is the sender; without one, each mail's own From
        # (a mailing list's view: the author then has an in-body From: line).
        sender = parseaddr(cover.sender if cover else mail.sender)[1].lower()
        problems = trailer_problems(mail, sender)
        if problems:
            yield Cell("trailers", row, FAIL, problems[0], tuple(problems))
        else:
            sobs = sum(1 for t in mail.trailers if t.tag.lower() == "signed-off-by")
            yield Cell("trailers", row, PASS, f"{sobs} Signed-off-by, the sender last")


def trailer_problems(mail: Mail, sender: str) -> list[str]:
    chain = list(mail.trailers)
    sobs = [t for t in chain if t.tag.lower() == "signed-off-by"]
    if not sobs:
        return ["no Signed-off-by"]
    out = [f"malformed trailer {t}: no e-mail address"
           for t in chain if t.tag.lower() in ("signed-off-by", "co-developed-by") and not t.email]
    if mail.author_email not in {t.email for t in sobs}:
        out.append(f"the author {mail.author} has no Signed-off-by")
    for i, t in enumerate(chain):
        if t.tag.lower() != "co-developed-by":
            continue
        if t.email == mail.author_email:
            out.append(f"the author {mail.author} is listed as Co-developed-by")
        after = chain[i + 1] if i + 1 < len(chain) else None
        if after is None or after.tag.lower() != "signed-off-by" or after.email != t.email:
            out.append(f"Co-developed-by: {t.value} is not followed by their Signed-off-by")
    if sender and sobs[-1].email != sender:
        out.append(f"the sender <{sender}> does not sign last (last: {sobs[-1].value})")
    return out


# --- Subject prefix -------------------------------------------------------------------


def load_prefixes(templates: Path) -> dict[str, tuple[str, ...]]:
    path = templates / "prefixes.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise KseriesError(f"{path}: cannot read the subject prefix table ({exc})") from exc
    return {k: tuple(v) for k, v in data.get("paths", {}).items()}


def table_prefixes(table: dict[str, tuple[str, ...]], path: str) -> tuple[str, ...]:
    """The most specific entry of the table for ``path``."""
    best = ""
    for key in table:
        covers = path == key or (key.endswith("/") and path.startswith(key))
        if covers and len(key) > len(best):
            best = key
    return table.get(best, ())


def learned_prefixes(ctx: Context, files: list[str]) -> tuple[str, ...]:
    """Prefixes the base's history uses for ``files`` (none for a one-commit import)."""
    count = workspace.git(ctx.base.repo, "rev-list", "--count", "--max-count=2",
                          ctx.base.commit, check=False)
    if not count.ok or count.stdout.strip() in ("", "0", "1"):
        return ()
    res = workspace.git(ctx.base.repo, "log", "--format=%s", "-n", "50", ctx.base.commit,
                        "--", *files, check=False)
    seen: dict[str, int] = {}
    for line in res.stdout.splitlines():
        p = subsystem_prefix(line.strip())
        if p:
            seen[p] = seen.get(p, 0) + 1
    return tuple(sorted(seen, key=lambda p: -seen[p]))


def prefix(ctx: Context) -> Iterable[Cell]:
    """The subject's subsystem prefix is one the touched files' subsystems use."""
    table = load_prefixes(ctx.templates)
    for row, mail in ctx.rows():
        have = mail.subject.prefix
        files = [f.path for f in mail.files]
        accepted: list[str] = []
        for f in files:
            accepted += [p for p in table_prefixes(table, f) if p not in accepted]
        learned = learned_prefixes(ctx, files) if files else ()
        accepted += [p for p in learned if p not in accepted]
        if not have:
            yield Cell("prefix", row, FAIL, "no subsystem prefix (\"subsystem: summary\")",
                       tuple(f"expected one of: {', '.join(accepted)}" for _ in accepted[:1]))
        elif not accepted:
            yield Cell("prefix", row, WARN, f"no known prefix for {', '.join(files)}",
                       ("add the paths to templates/prefixes.toml",))
        elif have in accepted:
            source = "history" if have in learned else "prefixes.toml"
            yield Cell("prefix", row, PASS, f"{have!r} ({source})")
        elif have.lower() in {p.lower() for p in accepted}:
            yield Cell("prefix", row, WARN, f"{have!r} differs in case from what "
                       f"{files[0]} uses", (f"accepted: {', '.join(accepted)}",))
        else:
            yield Cell("prefix", row, FAIL, f"{have!r} is not a prefix of "
                       f"{', '.join(files)}", (f"expected one of: {', '.join(accepted)}",))


# --- Series shape ---------------------------------------------------------------------


def shape(ctx: Context) -> Iterable[Cell]:
    """Numbering, the cover letter, its diffstat and shortlog, base-commit."""
    n = len(ctx.series.patches)
    cover = ctx.series.cover
    tags = (cover or ctx.series.patches[0]).subject.tag_text
    yield from damaged(ctx)
    for row, mail in ctx.rows():
        s = mail.subject
        if s.number is None:
            if n > 1:
                yield Cell("shape", row, FAIL, "not numbered: expected [PATCH m/n]")
            else:
                yield Cell("shape", row, PASS, "a single patch")
            continue
        lies = _patch_diffstat(mail)
        if lies:
            yield Cell("shape", row, FAIL, lies[0], tuple(lies))
        if s.number != row or s.total != n:
            yield Cell("shape", row, FAIL, f"numbered {s.number}/{s.total} but it is patch "
                       f"{row} of {n}")
        elif s.tag_text != tags:
            yield Cell("shape", row, FAIL, f"[{s.tag_text}] differs from the series' [{tags}]")
        else:
            yield Cell("shape", row, PASS, f"{s.number}/{s.total}")
    if cover is None:
        if n > 2:
            yield Cell("shape", 0, FAIL, f"no cover letter for a {n}-patch series")
    else:
        if cover.subject.total != n:
            yield Cell("shape", 0, FAIL, f"cover letter numbered 0/{cover.subject.total} "
                       f"for {n} patches")
        placeholders = [p for p in ("*** SUBJECT HERE ***", "*** BLURB HERE ***")
                        if p in cover.subject.raw or p in cover.body]
        if placeholders:
            yield Cell("shape", 0, FAIL, f"the cover letter still says {placeholders[0]}")
        yield from _diffstat(ctx, cover)
        yield from _shortlog(ctx, cover)
    yield from _base_commit(ctx)


def damaged(ctx: Context) -> Iterable[Cell]:
    """A FAIL for each patch whose diff cannot be read whole (cut off, mangled)."""
    for row, mail in ctx.rows():
        if mail.damage:
            yield Cell("shape", row, FAIL, f"damaged patch: {mail.damage}")


def expected_stat(ctx: Context) -> dict[str, tuple[int, int]]:
    """File -> (added, removed) of the whole series: git's when applied, else unidiff's."""
    tip = ctx.tip or (ctx.rendered.tip if ctx.rendered else "")
    repo = ctx.rendered.repo if ctx.rendered and not ctx.tip else workspace.scratch_repo(ctx.base)
    if tip:
        res = workspace.git(repo, "diff", "--numstat", "--no-renames", ctx.base.commit, tip,
                            check=False)
        if res.ok:
            out = {}
            for line in res.stdout.splitlines():
                a, r, name = line.split("\t", 2)
                out[name] = (int(a) if a.isdigit() else 0, int(r) if r.isdigit() else 0)
            return out
    sums: dict[str, tuple[int, int]] = {}
    for mail in ctx.series.patches:
        for f in mail.files:
            plus, minus = sums.get(f.path, (0, 0))
            sums[f.path] = (plus + f.added, minus + f.removed)
    return sums


def _diffstat(ctx: Context, cover: Mail) -> Iterable[Cell]:
    text = cover.body + "\n" + cover.notes
    listed: dict[str, str] = {}
    summary = None
    for line in text.splitlines():
        if m := _STAT_LINE.match(line):
            listed[m.group(1).strip()] = m.group(2)
        elif m := _STAT_SUMMARY.match(line):
            summary = m
    if not listed:
        yield Cell("shape", 0, WARN, "the cover letter has no diffstat")
        return
    want = expected_stat(ctx)
    problems = []
    matched = set()
    for shown, count in listed.items():
        path = _match_path(shown, want)
        if path is None:
            problems.append(f"diffstat lists {shown}, which no patch touches")
            continue
        matched.add(path)
        a, r = want[path]
        if count.isdigit() and int(count) != a + r:
            problems.append(f"diffstat says {count} lines for {path}, the patches change {a + r}")
    problems += [f"diffstat misses {p}" for p in want if p not in matched]
    if summary:
        files, ins, dels = (int(summary.group(i) or 0) for i in (1, 2, 3))
        real = (len(want), sum(a for a, _ in want.values()), sum(r for _, r in want.values()))
        if (files, ins, dels) != real:
            problems.append(f"diffstat summary says {files} files, +{ins} -{dels}; the patches: "
                            f"{real[0]} files, +{real[1]} -{real[2]}")
    if problems:
        yield Cell("shape", 0, FAIL, problems[0], tuple(problems))
    else:
        yield Cell("shape", 0, PASS, f"cover diffstat matches: {len(want)} files")


def _patch_diffstat(mail: Mail) -> list[str]:
    """A patch's own diffstat (after ``---``) against its diff."""
    listed = {m.group(1).strip(): m.group(2)
              for m in map(_STAT_LINE.match, mail.notes.splitlines()) if m}
    want = {f.path: (f.added, f.removed) for f in mail.files}
    problems = []
    for shown, count in listed.items():
        path = _match_path(shown, want)
        if path is None:
            problems.append(f"diffstat lists {shown}, which the patch does not touch")
        elif count.isdigit() and int(count) != sum(want[path]):
            problems.append(f"diffstat says {count} lines for {path}, the diff changes "
                            f"{sum(want[path])}")
    if listed:
        problems += [f"diffstat misses {p}" for p in want
                     if p not in {_match_path(s, want) for s in listed}]
    return problems


def _match_path(shown: str, want: dict[str, tuple[int, int]]) -> str | None:
    if shown in want:
        return shown
    if shown.startswith(".../"):
        tails = [p for p in want if p.endswith(shown[3:])]
        return tails[0] if len(tails) == 1 else None
    return None


def _shortlog(ctx: Context, cover: Mail) -> Iterable[Cell]:
    entries: list[tuple[str, str]] = []
    author = ""
    for line in cover.body.splitlines():
        if m := _SHORTLOG_AUTHOR.match(line):
            author = m.group(1)
        elif author and line.startswith("    ") and entries:
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
        elif author and line.startswith("  ") and line.strip():
            entries.append((author, line.strip()))
        elif not line.strip() and entries and author:
            author = ""
    if not entries:
        return
    want = sorted((parseaddr(m.author)[0], m.subject.title) for m in ctx.series.patches)
    if sorted(entries) != want:
        extra = [f"shortlog has {a}: {t}" for a, t in sorted(set(entries) - set(want))]
        missing = [f"shortlog misses {a}: {t}" for a, t in sorted(set(want) - set(entries))]
        details = tuple(extra + missing) or ("shortlog counts differ",)
        yield Cell("shape", 0, FAIL, details[0], details)


def _base_commit(ctx: Context) -> Iterable[Cell]:
    found = ctx.series.base_commit
    if not found:
        yield Cell("shape", 0, WARN, "no base-commit: line (git format-patch --base)")
    elif not ctx.base.commit.startswith(found):
        yield Cell("shape", 0, FAIL, f"base-commit {found[:12]} is not the base "
                   f"{ctx.base.commit[:12]} ({ctx.base.describe})")
    else:
        yield Cell("shape", 0, PASS, f"base-commit {found[:12]}")
