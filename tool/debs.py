"""Download Debian binary packages with kseries' own apt configuration.

    python tool/debs.py SUITE DEST PACKAGE=VERSION...

The Makefile's helper for what the machine's release does not carry: on
Debian 13 it fetches bookworm's LAVA dispatcher (architecture-independent
Python; trixie has none) for ``apt-get install ./*.deb``. The machine's apt
sources are not touched; the lists live in kseries' cache (base/archive.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kseries.base import archive
from kseries.errors import KseriesError


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not all("=" in a for a in argv[2:]):
        sys.stderr.write(__doc__ or "")
        return 2
    suite, dest, wanted = argv[0], Path(argv[1]), argv[2:]
    a = archive.archive(suite, (suite,))
    try:
        for want in wanted:
            package, _, version = want.partition("=")
            print(archive.fetch_binary(a, package, version, dest))
    except KseriesError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
