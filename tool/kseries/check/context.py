"""What every check reads: the Context.

A check is a function ``(Context) -> Iterable[Cell]``. The Context holds the
base, the series as mails, the manifest when the series is kseries' own, and
one worktree of the base (``workspace.checkout(base, base.commit, "am")``,
locked for the run) where the base's own scripts run and where ``git am``
applies the series.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from kseries.base import workspace
from kseries.base.bases import Base
from kseries.base.cache import cache_root, file_lock
from kseries.build.profiles import Profile
from kseries.check.mailbox import Mail, Series
from kseries.progress import NullReporter, Reporter
from kseries.render.manifest import Manifest
from kseries.render.series import RenderedSeries

TREE_NAME = "am"


@dataclass
class Context:
    base: Base
    series: Series
    templates: Path
    work: Path  # a scratch directory of this run
    reporter: Reporter = field(default_factory=NullReporter)
    manifest: Manifest | None = None  # set when the series is kseries' own
    rendered: RenderedSeries | None = None  # set when kseries rendered it in this run
    applied: dict[int, str] = field(default_factory=dict)  # row -> commit after git am
    tip: str = ""
    am_tried: bool = False  # applies ran (whether or not every patch applied)
    profiles: tuple[Profile, ...] = ()  # the build matrix (the series', or --profile's)
    _tree: Path | None = None
    _files: dict[int, Path] = field(default_factory=dict)

    @property
    def own(self) -> bool:
        return self.manifest is not None

    def rows(self) -> Iterator[tuple[int, Mail]]:
        """(row, mail) of each patch: rows count from 1, in series order."""
        yield from enumerate(self.series.patches, start=1)

    def tree(self) -> Path:
        """The base's worktree, at the base commit (git am moves it; this puts it back)."""
        self._tree = workspace.checkout(self.base, self.base.commit, TREE_NAME)
        return self._tree

    def patch_file(self, row: int) -> Path:
        """Row's mail as a file of its own (row 0 = the cover letter)."""
        if row not in self._files:
            mail = self.series.mails[row] if self.series.cover else self.series.patches[row - 1]
            path = self.work / "mails" / f"{row:04d}.patch"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(mail.raw)
            self._files[row] = path
        return self._files[row]

    def git_env(self) -> dict[str, str]:
        """Git without the user's configuration, committing as the series' sender."""
        name, addr = parseaddr(self.series.sender)
        name, addr = name or "kseries check", addr or "kseries@localhost"
        cfg = self.work / "gitconfig"
        if not cfg.exists():
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(f"[user]\n\tname = {name}\n\temail = {addr}\n")
        return {
            "GIT_CONFIG_GLOBAL": str(cfg), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": addr,
            "LC_ALL": "C", "TZ": "UTC",
        }


@contextmanager
def tree_lock(base: Base) -> Iterator[None]:
    """One check run at a time uses a base's worktree."""
    path = cache_root() / "trees" / base.key / f"{TREE_NAME}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        yield
