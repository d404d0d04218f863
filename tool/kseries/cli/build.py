"""`kseries build`: the kernel and the selftests for the series at its tip."""

from __future__ import annotations

import argparse

from kseries.base import bases
from kseries.build import artifacts, emulator
from kseries.cli.paths import KSELFTEST, series_dir
from kseries.cli.render import add_base_args
from kseries.cli.ui import ConsoleReporter
from kseries.run import inventory


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("build", help="build the kernel and the selftests for the series")
    add_base_args(p)
    p.add_argument("--profile", default="vm", help="build profile in templates/profiles "
                   "(vm: bzImage for the harness; kvm-x86: the maintainers' per-patch profile)")
    p.add_argument("--unpatched", action="store_true",
                   help="build the base itself (the harness compares against it)")
    p.add_argument("--emulator", action="store_true",
                   help="build only the emulated host's QEMU (Debian's QEMU source with "
                   "kseries' Bus Lock Threshold model; once per machine, then cached)")
    p.add_argument("--rebuild", action="store_true",
                   help="with --emulator: build it again even if it is cached")
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    if args.emulator:
        spec = emulator.load_spec(KSELFTEST)
        reporter = ConsoleReporter()
        reporter.start("build", f"emulator: {spec.package} {spec.version} + {spec.patch.name}")
        em = emulator.ensure(spec, reporter=reporter, rebuild=args.rebuild)
        reporter.finish("DONE", em.label)
        print(f"emulator:  {em.binary}")
        return 0
    base = bases.resolve(args.base, args.templates)
    smoke = inventory.load(KSELFTEST / "hosts.toml").plan.smoke
    a = artifacts.build(base, args.templates, series_dir(args.series), KSELFTEST, args.profile,
                        smoke=smoke,
                        patched=not args.unpatched, reporter=ConsoleReporter())
    print(f"build dir: {a.build_dir}")
    if a.kernel:
        print(f"kernel:    {a.kernel}")
    for path in a.selftests.values():
        print(f"selftest:  {path}")
    return 0
