"""Put a rendered series on a branch of a repository the user names.

Only a new branch is created (or, with force, an existing one that is not
checked out anywhere is moved). No working tree and no other ref is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base import workspace
from kseries.base.bases import Base
from kseries.errors import KseriesError
from kseries.render.series import RenderedSeries


@dataclass(frozen=True)
class BranchResult:
    repo: Path
    branch: str
    commit: str


def create_branch(
    series: RenderedSeries, branch: str, *, repo: Path | None = None, force: bool = False
) -> BranchResult:
    target = target_repo(series.base, repo)
    check_branch(target, branch, force=force)
    ref = f"refs/heads/{branch}"
    spec = f"{'+' if force else ''}{series.ref}:{ref}"
    workspace.git(target, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                  str(series.repo), spec)
    got = workspace.git(target, "rev-parse", ref).stdout.strip()
    if got != series.tip:
        raise KseriesError(f"branch {branch} in {target} is at {got[:12]}, not the series tip")
    return BranchResult(target, branch, got)


def target_repo(base: Base, repo: Path | None) -> Path:
    """The git directory the branch goes into: ``repo``'s, else the base's."""
    return _git_dir(repo) if repo else base.repo


def check_branch(target: Path, branch: str, *, force: bool = False) -> None:
    """Refuse a branch name that ``create_branch`` would refuse (callers check it first)."""
    ref = f"refs/heads/{branch}"
    check = workspace.git(target, "check-ref-format", ref, check=False)
    if not check.ok or not re.fullmatch(r"[^\s~^:?*\[\\]+", branch):
        raise KseriesError(f"--branch {branch!r}: not a valid branch name")
    exists = workspace.git(target, "rev-parse", "--verify", "--quiet", ref, check=False).ok
    if exists and not force:
        raise KseriesError(
            f"branch {branch} already exists in {target}",
            hint="choose another name, or --force to move it (the old commits stay reachable "
                 "by its reflog)",
        )
    worktrees = workspace.git(target, "worktree", "list", "--porcelain", check=False).stdout
    if f"branch {ref}\n" in worktrees + "\n":
        raise KseriesError(
            f"branch {branch} is checked out in a working tree of {target}",
            hint="kseries never changes a checked-out tree; choose another branch name",
        )


def _git_dir(path: Path) -> Path:
    res = proc.run(["git", "-C", path, "rev-parse", "--absolute-git-dir"], check=False)
    if not res.ok:
        raise KseriesError(f"--repo {path}: not a git repository")
    return Path(res.stdout.strip())
