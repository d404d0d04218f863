"""kvm_buslock_test, built statically at the tip against the tree's own headers."""

from __future__ import annotations

from collections.abc import Iterator

from kseries.build import kbuild, profiles
from kseries.check import bisect
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP, Cell
from kseries.errors import KseriesError
from kseries.render.probe import TEST_NAME


def check(ctx: Context) -> Iterator[Cell]:
    if ctx.rendered is None:
        yield Cell("selftest", 0, SKIP, f"not kseries' own series: no {TEST_NAME} to build")
        return
    profile = profiles.load_profile(ctx.templates, bisect.PROFILE)
    try:
        ctx.reporter.update(f"building {TEST_NAME} (static)")
        build = kbuild.open_build(ctx.base, profile, ctx.tip, reporter=ctx.reporter)
        kbuild.move(build, ctx.tip)
        st = kbuild.build_selftests(build, ctx.rendered.facts.selftest.dir, (TEST_NAME,))
    except KseriesError as exc:
        yield Cell("selftest", 0, FAIL, str(exc))
        return
    if st.warnings:
        yield Cell("selftest", 0, FAIL, f"{len(st.warnings)} warning(s): {st.warnings[0]}",
                   details=st.warnings)
    else:
        yield Cell("selftest", 0, PASS, f"static, no warnings: {st.binaries[TEST_NAME]}")
