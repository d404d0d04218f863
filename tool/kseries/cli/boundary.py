"""The one place where errors become a line on stderr and an exit code."""

from __future__ import annotations

import argparse
import sys

from kseries.errors import KseriesError


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: its handler's exit code, or the error's."""
    try:
        code: int = args.func(args)
        return code
    except KseriesError as exc:
        print(f"kseries: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kseries: interrupted", file=sys.stderr)
        return 130
