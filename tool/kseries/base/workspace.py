"""Where kseries writes: a scratch repository per base, and worktrees in it.

The scratch repository is bare and borrows every object of the base through
``objects/info/alternates``, so rendering and applying never write into the
user's repository. Worktrees for builds are checked out from it under the cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kseries import proc
from kseries.base.bases import Base
from kseries.base.cache import cache_root


def scratch_repo(base: Base) -> Path:
    """The bare scratch repository for ``base`` (created on first use)."""
    repo = cache_root() / "work" / f"{base.key}.git"
    alternates = repo / "objects" / "info" / "alternates"
    source = (base.repo / "objects").resolve()
    if alternates.exists() and alternates.read_text().strip() == str(source):
        return repo
    if not repo.exists():
        repo.parent.mkdir(parents=True, exist_ok=True)
        proc.run(["git", "init", "--quiet", "--bare", repo])
        proc.run(["git", "--git-dir", repo, "config", "gc.auto", "0"])
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(f"{source}\n")
    return repo


def git(repo: Path, *args: str, **kw: object) -> proc.Result:
    """``git --git-dir REPO ARGS`` through the one subprocess wrapper."""
    return proc.run(["git", "--git-dir", repo, *args], **kw)  # type: ignore[arg-type]


def checkout(base: Base, commit: str, name: str) -> Path:
    """A detached worktree of ``commit`` under the cache, reused when it is there.

    ``name`` tells worktrees of one base apart (e.g. "build" or "check").
    """
    repo = scratch_repo(base)
    path = cache_root() / "trees" / base.key / name
    if path.exists():
        head = proc.run(["git", "-C", path, "rev-parse", "HEAD"], check=False)
        if head.ok and head.stdout.strip() == commit:
            return path
        res = proc.run(
            ["git", "-C", path, "checkout", "--quiet", "--force", "--detach", commit],
            check=False,
        )
        if res.ok:
            proc.run(["git", "-C", path, "clean", "-qfdx"])
            return path
        shutil.rmtree(path)
        git(repo, "worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "--quiet", "--force", "--detach", str(path), commit)
    return path
