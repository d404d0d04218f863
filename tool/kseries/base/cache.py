"""Where kseries keeps what it makes, and the lock that lets two runs share it.

The cache is ``$KSERIES_CACHE``, else ``$XDG_CACHE_HOME/kseries``, else
``~/.cache/kseries``: imported bases, scratch repositories, worktrees, build
directories, rendered series and reports.

Two kseries processes may use one cache at the same time. Whatever they make
for the first time is made under ``file_lock``; files are replaced whole
(``write_atomic``: a temporary file of a unique name beside the target, then a
rename), so a reader never sees half of one and two writers never share a
temporary name.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("kseries.cache")

# Locks this process holds: path -> (owning thread, depth). flock() conflicts between
# two open() of one file even in one process, so a nested file_lock of a path that
# this thread already holds must not lock it again.
_held: dict[Path, tuple[int, int]] = {}
_held_guard = threading.Lock()


def cache_root() -> Path:
    root = os.environ.get("KSERIES_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "kseries"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (other processes and threads wait).

    The lock is flock(2) on an open file: the kernel drops it when the holder
    exits, however it exits (a killed run leaves no stale lock). The file itself
    stays; it is never removed, as removing a lock file races with its next user.
    A thread that holds the lock already may take it again (it nests).
    """
    key = path.absolute()
    me = threading.get_ident()
    with _held_guard:
        owner, depth = _held.get(key, (0, 0))
        if depth and owner == me:
            _held[key] = (me, depth + 1)
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] = (me, _held[key][1] - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("waiting for another kseries run (lock %s)", path)
            fcntl.flock(fh, fcntl.LOCK_EX)
        with _held_guard:
            _held[key] = (me, 1)
        try:
            yield
        finally:
            with _held_guard:
                del _held[key]
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` whole: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
