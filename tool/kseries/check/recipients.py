"""The Recipients check: the series' To/Cc cover what ``get_maintainer.pl`` lists.

get_maintainer.pl runs through kseries.base.maintainers, as submit runs it, so
the check and submission agree on the list.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import formataddr, parseaddr

from kseries.base import maintainers, workspace
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP, WARN, Cell


def recipients(ctx: Context) -> Iterable[Cell]:
    """The series' To/Cc cover what ``get_maintainer.pl`` lists for each patch."""
    script = f"{ctx.base.commit}:{maintainers.SCRIPT}"
    if not workspace.git(workspace.scratch_repo(ctx.base), "cat-file", "-e", script,
                         check=False).ok:
        yield Cell("recipients", 0, SKIP, f"the base has no {maintainers.SCRIPT}")
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
                            for found in maintainers.for_patches(ctx.base, files)),
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


def _why(listed: maintainers.Listed) -> str:
    """``Name <address> (maintainer of SECTION, ...)``: who, and why get_maintainer lists them."""
    ident = formataddr((listed.name, listed.address)) if listed.name else listed.address
    roles = ", ".join(str(r) for r in listed.roles)
    return f"{ident} ({roles})" if roles else ident


def _address(why: str) -> str:
    return parseaddr(why.split(" (", 1)[0])[1].lower()
