"""The Recipients check: the series' To/Cc cover what ``get_maintainer.pl`` lists.

Also a minimal runner of the base's ``scripts/get_maintainer.pl`` (no git
history: the Debian bases have none), until submission's recipients module
offers one to share.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parseaddr
from pathlib import Path

from kseries import proc
from kseries.checks import Context
from kseries.report import FAIL, PASS, SKIP, WARN, Cell


def get_maintainer(tree: Path, *args: str | Path) -> list[str]:
    """The addresses ``scripts/get_maintainer.pl`` prints (no git history used)."""
    script = tree / "scripts" / "get_maintainer.pl"
    res = proc.run(["perl", script, "--no-rolestats", "--no-git", "--no-git-fallback",
                    "--no-tree", *args], cwd=tree, timeout=300, what="get_maintainer.pl")
    return [ln.strip() for ln in res.stdout.splitlines() if "@" in ln]


def maintained(tree: Path, path: str) -> bool:
    """Does a MAINTAINERS entry other than THE REST cover ``path`` (or its directory)?"""
    where = Path(path)
    while not (tree / where).exists() and where != Path("."):
        where = where.parent
    people = get_maintainer(tree, "--no-l", "-f", str(where))
    return any(parseaddr(p)[1] != "torvalds@linux-foundation.org" for p in people)


def recipients(ctx: Context) -> Iterable[Cell]:
    """The series' To/Cc cover what ``get_maintainer.pl`` lists for each patch."""
    tree = ctx.tree()
    if not (tree / "scripts" / "get_maintainer.pl").exists():
        yield Cell("recipients", 0, SKIP, "the base has no scripts/get_maintainer.pl")
        return
    cover = ctx.series.cover
    common = {parseaddr(a)[1].lower() for a in (cover.recipients if cover else ())}
    addressed = any(m.recipients for m in ctx.series.mails)
    by_submit = ctx.rendered is not None and ctx.manifest is not None and not addressed
    if by_submit and ctx.manifest:
        common |= {parseaddr(a)[1].lower() for a in ctx.manifest.to + ctx.manifest.cc}
    missing_all: dict[str, str] = {}
    ctx.reporter.update(f"get_maintainer.pl on {len(ctx.series.patches)} patches")
    files = {row: ctx.patch_file(row) for row, _ in ctx.rows()}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        lists = dict(zip(files, pool.map(lambda f: get_maintainer(tree, f), files.values()),
                         strict=True))
    for row, mail in ctx.rows():
        listed = lists[row]
        have = common | {parseaddr(a)[1].lower() for a in mail.recipients}
        missing = [a for a in listed if parseaddr(a)[1].lower() not in have]
        for a in missing:
            missing_all.setdefault(parseaddr(a)[1].lower(), a)
        if not missing:
            yield Cell("recipients", row, PASS, f"covers get_maintainer's {len(listed)}")
        elif by_submit:
            yield Cell("recipients", row, PASS, f"submit adds {len(missing)} of "
                       f"get_maintainer's {len(listed)} to the manifest's", tuple(missing))
        elif not addressed:
            yield Cell("recipients", row, WARN, f"not addressed yet: no To/Cc; "
                       f"get_maintainer.pl lists {len(listed)}", tuple(listed))
        else:
            yield Cell("recipients", row, FAIL, f"missing {len(missing)} of get_maintainer's "
                       f"{len(listed)}: {', '.join(missing[:3])}", tuple(missing))
    if missing_all and addressed:
        yield Cell("recipients", 0, FAIL, f"missing {len(missing_all)} recipients",
                   tuple(missing_all.values()))
