"""Where kseries writes: a scratch repository per base, and worktrees in it.

The scratch repository is bare and borrows every object of the base through
``objects/info/alternates``, so rendering and applying never write into the
user's repository. Worktrees for builds are checked out from it under the cache.

Two kseries runs may share them: the scratch repository is made, and its refs
are written, under ``writing(base)``; a worktree is made or moved under a lock of
its own. A run that was killed may have left a worktree in the middle of
``git am``, with changed files, or half made: the next ``checkout`` puts it right
(or makes it again).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kseries import proc
from kseries.base.bases import Base
from kseries.base.cache import cache_root, file_lock, write_atomic


def _scratch_path(base: Base) -> Path:
    return cache_root() / "work" / f"{base.key}.git"


@contextmanager
def writing(base: Base) -> Iterator[Path]:
    """Hold the lock of ``base``'s scratch repository; yields the repository.

    Every writer of its refs holds this lock, so a ref lock file that git or
    GitPython left there is a killed run's, and is removed.
    """
    repo = _scratch_path(base)
    with file_lock(repo.with_suffix(".lock")):
        repo = scratch_repo(base)
        for stale in [*(repo / "refs").rglob("*.lock"), repo / "packed-refs.lock"]:
            stale.unlink(missing_ok=True)
        yield repo


def scratch_repo(base: Base) -> Path:
    """The bare scratch repository for ``base`` (created on first use)."""
    repo = _scratch_path(base)
    alternates = repo / "objects" / "info" / "alternates"
    source = (base.repo / "objects").resolve()
    if _borrows(alternates, source):
        return repo
    with file_lock(repo.with_suffix(".lock")):
        if _borrows(alternates, source):  # another run made it meanwhile
            return repo
        if not (repo / "HEAD").is_file():
            repo.parent.mkdir(parents=True, exist_ok=True)
            proc.run(["git", "init", "--quiet", "--bare", repo])
            proc.run(["git", "--git-dir", repo, "config", "gc.auto", "0"])
        write_atomic(alternates, f"{source}\n")
    return repo


def _borrows(alternates: Path, source: Path) -> bool:
    try:
        return alternates.read_text().strip() == str(source)
    except OSError:
        return False


def git(repo: Path, *args: str, **kw: object) -> proc.Result:
    """``git --git-dir REPO ARGS`` through the one subprocess wrapper."""
    return proc.run(["git", "--git-dir", repo, *args], **kw)  # type: ignore[arg-type]


def checkout(base: Base, commit: str, name: str) -> Path:
    """A detached, clean worktree of ``commit`` under the cache, reused when it is there.

    ``name`` tells worktrees of one base apart (e.g. "build" or "check").
    """
    repo = scratch_repo(base)
    path = cache_root() / "trees" / base.key / name
    with file_lock(path.parent / f".{name}.checkout.lock"):
        if _is_worktree(path):
            left_over = _abandoned_state(path)
            if not left_over and _head(path) == commit and _clean(path):
                return path
            for state in left_over:  # a killed run's git am, or its index lock
                shutil.rmtree(state) if state.is_dir() else state.unlink(missing_ok=True)
            res = proc.run(
                ["git", "-C", path, "checkout", "--quiet", "--force", "--detach", commit],
                check=False,
            )
            if res.ok:
                proc.run(["git", "-C", path, "clean", "-qfdx"])
                return path
        if path.exists() or path.is_symlink():
            shutil.rmtree(path)
        git(repo, "worktree", "prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        git(repo, "worktree", "add", "--quiet", "--force", "--detach", str(path), commit)
    return path


def _is_worktree(path: Path) -> bool:
    """``path`` is a worktree of its own (not a half-made one inside some other repository)."""
    if not (path / ".git").is_file():
        return False
    res = proc.run(["git", "-C", path, "rev-parse", "--show-toplevel"], check=False)
    return res.ok and Path(res.stdout.strip()).resolve() == path.resolve()


def _head(path: Path) -> str:
    res = proc.run(["git", "-C", path, "rev-parse", "HEAD"], check=False)
    return res.stdout.strip() if res.ok else ""


def _abandoned_state(path: Path) -> list[Path]:
    """What a killed git left in the worktree's git directory: am/rebase state, index.lock."""
    res = proc.run(["git", "-C", path, "rev-parse", "--git-dir"], check=False)
    if not res.ok:
        return []
    gitdir = Path(res.stdout.strip())
    gitdir = gitdir if gitdir.is_absolute() else path / gitdir
    names = ("rebase-apply", "rebase-merge", "index.lock", "HEAD.lock")
    return [gitdir / n for n in names if (gitdir / n).exists()]


def _clean(path: Path) -> bool:
    res = proc.run(["git", "-C", path, "status", "--porcelain", "--ignored"], check=False)
    return res.ok and not res.stdout.strip()
