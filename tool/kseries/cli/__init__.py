"""The command line: the only place that prints and picks exit codes.

Takes argv, gives an exit code. Each subcommand lives in its own module
(render.py: render, apply, facts; check.py; build.py; run.py; submit.py:
submit, diff; pipeline.py) exposing ``register(subparsers)``; the parser it
adds sets ``func`` to a handler ``(args) -> int``. boundary.py turns errors
into one line and an exit code; paths.py finds the series data; ui.py draws
progress.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from kseries import __version__
from kseries.cli import build, check, pipeline, render, run, submit
from kseries.cli.boundary import run_command

# Subcommand modules, in the order `kseries --help` lists them.
COMMAND_MODULES = (render, check, build, run, submit, pipeline)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kseries",
        description="Render, check, build, run and prepare the KVM/SVM Bus Lock Threshold series.",
    )
    parser.add_argument("--version", action="version", version=f"kseries {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    # `pipeline` runs the other subcommands through this same parser.
    parser.set_defaults(parser=parser)
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
