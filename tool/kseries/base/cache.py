"""Where kseries keeps what it makes, and the lock that lets two runs share it.

The cache is ``$KSERIES_CACHE``, else ``$XDG_CACHE_HOME/kseries``, else
``~/.cache/kseries``: imported bases, scratch repositories, worktrees, build
directories, rendered series and reports.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("KSERIES_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kseries"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (other processes and threads wait)."""
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
