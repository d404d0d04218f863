"""``git range-diff`` between two renderings of the series.

A side is a range ``base..tip`` in some repository: a rendering's scratch
repository, or a directory of patch files from an earlier rendering, which is
imported (``git mailinfo`` + ``git apply --cached`` into a temporary index +
``git commit-tree``) onto the commit its ``base-commit:`` line names. Both sides
meet in a temporary bare repository that borrows the objects of every
repository involved (git alternates), so nothing is written anywhere else.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base.cache import cache_root
from kseries.errors import KseriesError
from kseries.render.series import GIT_ENV, RenderedSeries

_BASE_COMMIT = re.compile(r"^base-commit:\s*([0-9a-f]{40})\s*$", re.M)
_COVER = re.compile(r"^Subject:\s*\[[^\]]*\b0+/\d+\]", re.M)
IMPORT_IDENT = {"GIT_COMMITTER_NAME": "kseries", "GIT_COMMITTER_EMAIL": "kseries@localhost",
                "GIT_COMMITTER_DATE": "946684800 +0000"}


@dataclass(frozen=True)
class Side:
    label: str  # what to call it: "debian:6.1", "v1 (patches/)"
    repo: Path  # a git directory holding base and tip (or borrowing them)
    base: str
    tip: str


def of_series(series: RenderedSeries) -> Side:
    return Side(f"{series.manifest.id} on {series.base.label}", series.repo, series.base.commit,
                series.tip)


def patch_files(directory: Path) -> list[Path]:
    """The mails of a rendering directory, in order (cover letter included)."""
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.suffix in (".patch", ".eml", ".mbox", ".mbx"))
    if not files:
        raise KseriesError(f"{directory}: no patch files",
                           hint="give the directory of an earlier `kseries render` or outbox")
    return files


def known_repos() -> list[Path]:
    """Every scratch repository kseries has made (each borrows its base's objects)."""
    return sorted((cache_root() / "work").glob("*.git"))


@contextmanager
def meeting(repos: Sequence[Path]) -> Iterator[Path]:
    """A temporary bare repository that can read the objects of ``repos``."""
    with tempfile.TemporaryDirectory(prefix="kseries-rangediff-") as tmp:
        repo = Path(tmp) / "meet.git"
        proc.run(["git", "init", "--quiet", "--bare", repo], env=GIT_ENV)
        alternates = repo / "objects" / "info" / "alternates"
        seen: list[str] = []
        for r in repos:
            objects = str((r / "objects").resolve())
            if objects not in seen:
                seen.append(objects)
        alternates.write_text("".join(f"{o}\n" for o in seen))
        yield repo


def _has_commit(repo: Path, commit: str) -> bool:
    return proc.run(["git", "--git-dir", repo, "cat-file", "-e", f"{commit}^{{commit}}"],
                    env=GIT_ENV, check=False).ok


def base_commit_of(files: Sequence[Path]) -> str:
    for path in reversed(files):
        m = _BASE_COMMIT.search(path.read_text(errors="replace"))
        if m:
            return m.group(1)
    raise KseriesError(f"{files[0].parent}: no base-commit: line in its patches",
                       hint="render it with kseries (git format-patch --base)")


def import_patches(repo: Path, directory: Path) -> Side:
    """Commit the patches of ``directory`` in ``repo`` on their base commit."""
    files = [p for p in patch_files(directory) if not _COVER.search(p.read_text(errors="replace"))]
    base = base_commit_of(patch_files(directory))
    if not _has_commit(repo, base):
        raise KseriesError(
            f"{directory}: its base commit {base[:12]} is not in any base kseries knows",
            hint="render the series against that base once (kseries render --base ...)",
        )
    with tempfile.TemporaryDirectory(prefix="kseries-import-") as tmp:
        work = Path(tmp)
        env = dict(GIT_ENV, GIT_INDEX_FILE=str(work / "index"), **IMPORT_IDENT)
        git = ["git", "--git-dir", str(repo)]
        proc.run([*git, "read-tree", base], env=env)
        parent = base
        for path in files:
            info = proc.run(["git", "mailinfo", "-u", work / "msg", work / "diff"],
                            input=path.read_text(errors="replace"), env=env, cwd=work,
                            what=f"git mailinfo {path.name}")
            fields = dict(line.split(": ", 1) for line in info.stdout.splitlines() if ": " in line)
            res = proc.run([*git, "apply", "--cached", work / "diff"], env=env, check=False)
            if not res.ok:
                raise KseriesError(f"{path.name} does not apply to {base[:12]}",
                                   hint=" | ".join(proc.key_lines(res.stderr)[:2]))
            tree = proc.run([*git, "write-tree"], env=env).stdout.strip()
            message = fields.get("Subject", "") + "\n\n" + (work / "msg").read_text()
            author = {"GIT_AUTHOR_NAME": fields.get("Author", ""),
                      "GIT_AUTHOR_EMAIL": fields.get("Email", ""),
                      "GIT_AUTHOR_DATE": fields.get("Date", "")}
            parent = proc.run([*git, "commit-tree", tree, "-p", parent],
                              input=message, env=dict(env, **author)).stdout.strip()
    return Side(str(directory), repo, base, parent)


def range_diff(a: Side, b: Side, repo: Path, *, creation_factor: int | None = None) -> str:
    """``git range-diff a.base..a.tip b.base..b.tip``, run in ``repo``."""
    argv = ["git", "-c", "core.abbrev=12", "--git-dir", str(repo), "range-diff", "--no-color"]
    if creation_factor is not None:
        argv.append(f"--creation-factor={creation_factor}")
    argv += [f"{a.base}..{a.tip}", f"{b.base}..{b.tip}"]
    return proc.run(argv, env=GIT_ENV, what="git range-diff").stdout


def against(series: RenderedSeries, other: RenderedSeries | Path, *,
            creation_factor: int | None = None) -> tuple[str, str]:
    """(label, range-diff) from ``other`` (a rendering or a directory) to ``series``."""
    if isinstance(other, Path):
        with meeting([series.repo, *known_repos()]) as repo:
            old = import_patches(repo, other)
            return old.label, range_diff(old, of_series(series), repo,
                                         creation_factor=creation_factor)
    with meeting([series.repo, other.repo]) as repo:
        old = of_series(other)
        return old.label, range_diff(old, of_series(series), repo,
                                     creation_factor=creation_factor)
