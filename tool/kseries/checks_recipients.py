"""The Recipients check: the series' To/Cc cover what ``get_maintainer.pl`` lists.

get_maintainer.pl runs through kseries.recipients, as submit runs it, so the
check and submission agree on the list. ``maintained`` asks the base's worktree
whether a path has a MAINTAINERS entry (``get_maintainer.pl -f``), for
checkpatch's FILE_PATH_CHANGES advice.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import formataddr, parseaddr
from pathlib import Path

from kseries import proc, workspace
from kseries import recipients as recipients_module
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
    script = f"{ctx.base.commit}:{recipients_module.SCRIPT}"
    if not workspace.git(workspace.scratch_repo(ctx.base), "cat-file", "-e", script,
                         check=False).ok:
        yield Cell("recipients", 0, SKIP, f"the base has no {recipients_module.SCRIPT}")
        return
    cover = ctx.series.cover
    common = {parseaddr(a)[1].lower() for a in (cover.recipients if cover else ())}
    addressed = any(m.recipients for m in ctx.series.mails)
    by_submit = ctx.rendered is not None and ctx.manifest is not None and not addressed
    if by_submit and ctx.manifest:
        common |= {parseaddr(a)[1].lower() for a in ctx.manifest.to + ctx.manifest.cc}
    missing_all: dict[str, str] = {}
    ctx.reporter.update(f"get_maintainer.pl on {len(ctx.series.patches)} patches")
    files = [ctx.patch_file(row) for row, _ in ctx.rows()]
    lists = dict(enumerate(([_why(p) for p in found]
                            for found in recipients_module.for_patches(ctx.base, files)),
                           start=1))
    for row, mail in ctx.rows():
        listed = lists[row]
        have = common | {parseaddr(a)[1].lower() for a in mail.recipients}
        missing = [a for a in listed if _address(a) not in have]
        for a in missing:
            missing_all.setdefault(_address(a), a)
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
                       f"{len(listed)}: {', '.join(_address(a) for a in missing[:3])}",
                       tuple(missing))
    if missing_all and addressed:
        yield Cell("recipients", 0, FAIL, f"missing {len(missing_all)} recipients",
                   tuple(missing_all.values()))


def _why(listed: recipients_module.Listed) -> str:
    """``Name <address> (maintainer of SECTION, ...)``: who, and why get_maintainer lists them."""
    ident = formataddr((listed.name, listed.address)) if listed.name else listed.address
    roles = ", ".join(str(r) for r in listed.roles)
    return f"{ident} ({roles})" if roles else ident


def _address(why: str) -> str:
    return parseaddr(why.split(" (", 1)[0])[1].lower()
