"""`kseries build`: the kernel and the selftests for the series at its tip."""

from __future__ import annotations

import argparse

from kseries import artifacts, inventory, kbuild
from kseries import base as bases
from kseries import render as rendering
from kseries.cli.paths import KSELFTEST
from kseries.cli.render import add_base_args, render_for
from kseries.cli.ui import ConsoleReporter
from kseries.probe import TEST_NAME, probe
from kseries.progress import Reporter


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("build", help="build the kernel and the selftests for the series")
    add_base_args(p)
    p.add_argument("--profile", default="vm", help="build profile in templates/profiles "
                   "(vm: bzImage for the harness; kvm-x86: the maintainers' per-patch profile)")
    p.add_argument("--unpatched", action="store_true",
                   help="build the base itself (the harness compares against it)")
    p.set_defaults(func=cmd_build)


def build(args: argparse.Namespace, reporter: Reporter) -> artifacts.Artifacts:
    """Render (unless --unpatched), then build the profile's targets and the selftests."""
    profile = kbuild.load_profile(args.templates, args.profile)
    if args.unpatched:
        base = bases.resolve(args.base, args.templates)
        commit, test_dir = base.commit, probe(rendering.base_reader(base)).selftest.dir
    else:
        series = render_for(args)
        base, commit, test_dir = series.base, series.tip, series.facts.selftest.dir
    plan = inventory.load(KSELFTEST / "hosts.toml").plan
    names = tuple(dict.fromkeys((*plan.smoke, TEST_NAME)))
    if args.unpatched:
        names = tuple(n for n in names if n != TEST_NAME)
    reporter.start("build", f"{profile.name} for {base.describe}"
                   + (" (unpatched)" if args.unpatched else f" at {commit[:12]}"))
    b = kbuild.open_build(base, profile, commit, variant="" if not args.unpatched else "base",
                          reporter=reporter)
    kbuild.move(b, commit)
    reporter.update(f"make {' '.join(profile.targets)} (log: {b.logs})")
    kbuild.make(b, *profile.targets, log="build")
    reporter.update(f"selftests: {', '.join(names)}")
    tests = kbuild.build_selftests(b, test_dir, names)
    kernel = b.out / "arch/x86/boot/bzImage"
    result = artifacts.Artifacts(profile.name, commit, not args.unpatched,
                                 kernel if kernel.exists() else None, tests.binaries, b.out)
    artifacts.save(base, result)
    reporter.finish("DONE", f"{len(tests.binaries)} selftests"
                    + (f", {len(tests.warnings)} warnings" if tests.warnings else ""))
    return result


def cmd_build(args: argparse.Namespace) -> int:
    a = build(args, ConsoleReporter())
    print(f"build dir: {a.build_dir}")
    if a.kernel:
        print(f"kernel:    {a.kernel}")
    for path in a.selftests.values():
        print(f"selftest:  {path}")
    return 0
