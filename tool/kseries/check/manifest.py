"""The manifest check: kseries' own series agrees with its manifest.

Subjects, the subject prefix, authors, trailer chains and the files of each
patch, against templates/series.toml and this run's rendering.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import parseaddr

from kseries.base import workspace
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP, Cell


def manifest(ctx: Context) -> Iterable[Cell]:
    """Subjects, authors, trailer chains and files agree with templates/series.toml."""
    m = ctx.manifest
    if m is None:
        yield Cell("manifest", 0, SKIP, "not kseries' series: checked against kernel "
                   "conventions instead")
        return
    if len(ctx.series.patches) != len(m.patches):
        yield Cell("manifest", 0, FAIL, f"{len(ctx.series.patches)} patches, the manifest "
                   f"has {len(m.patches)}")
    cover = ctx.series.cover
    if cover is not None and cover.subject.title != m.cover_subject:
        yield Cell("manifest", 0, FAIL, f"cover subject {cover.subject.title!r} is not "
                   f"{m.cover_subject!r}")
    elif cover is not None:
        yield Cell("manifest", 0, PASS, "cover letter subject")
    files = _rendered_files(ctx)
    for (row, mail), want in zip(ctx.rows(), m.patches, strict=False):
        problems = []
        if mail.subject.title != want.subject:
            problems.append(f"subject {mail.subject.title!r} is not {want.subject!r}")
        if mail.subject.tag_text != m.prefix:
            problems.append(f"[{mail.subject.tag_text}] is not [{m.prefix}]")
        name, addr = parseaddr(mail.author)
        if (name, addr.lower()) != (want.author.name, want.author.email.lower()):
            problems.append(f"author {mail.author} is not {want.author.ident}")
        chain = [str(t) for t in mail.trailers]
        expected = [str(t) for t in want.trailers]
        if chain != expected:
            problems.append(f"trailers {chain} are not {expected}")
        if files and row <= len(files):
            got = sorted(f.path for f in mail.files)
            if got != files[row - 1]:
                problems.append(f"files {got} are not the rendered {files[row - 1]}")
        if problems:
            yield Cell("manifest", row, FAIL, problems[0], tuple(problems))
        else:
            yield Cell("manifest", row, PASS, "matches the manifest")


def _rendered_files(ctx: Context) -> list[list[str]]:
    if ctx.rendered is None:
        return []
    out = []
    parent = ctx.base.commit
    for commit in ctx.rendered.commits:
        res = workspace.git(ctx.rendered.repo, "diff", "--name-only", parent, commit)
        out.append(sorted(res.stdout.split()))
        parent = commit
    return out
