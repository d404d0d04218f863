"""The command line. The only place that prints and picks exit codes.

Each subcommand lives in its own module exposing ``register(subparsers)``; the
parser it adds sets ``func`` to a handler ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kseries import __version__
from kseries.errors import KseriesError

# Subcommand modules, in the order `kseries --help` lists them.
COMMAND_MODULES = ("render", "check", "build", "run", "submit", "pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kseries",
        description="Render, check, build, run and prepare the KVM/SVM Bus Lock Threshold series.",
    )
    parser.add_argument("--version", action="version", version=f"kseries {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"kseries.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: the one place errors become a line and an exit code."""
    try:
        code: int = args.func(args)
        return code
    except KseriesError as exc:
        print(f"kseries: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kseries: interrupted", file=sys.stderr)
        return 130
