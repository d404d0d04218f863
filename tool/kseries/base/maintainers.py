"""The base's own ``scripts/get_maintainer.pl``: who it lists for a patch, and why.

The recipients check and submit both ask it, so it lives below both. With
``--no-tree --no-git`` it needs only ``MAINTAINERS``, ``.mailmap`` and itself:
those are taken from the base commit with ``git archive`` into a temporary
directory, so no checkout is needed. ``maintained`` asks a checked-out tree
whether a path has a MAINTAINERS entry of its own (``get_maintainer.pl -f``).
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from kseries import proc
from kseries.base import workspace
from kseries.base.bases import Base
from kseries.errors import KseriesError

SCRIPT = "scripts/get_maintainer.pl"
SUPPORT_FILES = ("MAINTAINERS", ".mailmap", ".get_maintainer.conf", ".get_maintainer.ignore")
# Without history (the Debian bases have none) and with one role list per line.
OPTIONS = ("--no-tree", "--no-git", "--no-git-fallback", "--roles", "--no-rolestats",
           "--multiline", "--m", "--r", "--l", "--n")
_LINE = re.compile(r"^(?P<who>.*?)\s+\((?P<roles>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*$")
_ROLE_SPLIT = re.compile(r",(?=[a-z])")


@dataclass(frozen=True)
class Role:
    """One line of get_maintainer's reasoning: a kind and the MAINTAINERS section."""

    kind: str  # "maintainer", "reviewer", "supporter", "open list", "moderated list", ...
    section: str  # "KERNEL VIRTUAL MACHINE FOR X86 (KVM/x86)", or "" (e.g. "open list")

    @property
    def is_list(self) -> bool:
        return self.kind.endswith("list")

    def __str__(self) -> str:
        if self.is_list:
            return f"{self.kind} of {self.section}" if self.section else self.kind
        return f"{self.kind} of {self.section}" if self.section else self.kind


@dataclass(frozen=True)
class Listed:
    """An address get_maintainer.pl printed for one patch."""

    name: str
    address: str
    roles: tuple[Role, ...]


@contextmanager
def maintainer_tool(base: Base) -> Iterator[Path]:
    """A temporary directory holding the base's get_maintainer.pl and MAINTAINERS."""
    repo = workspace.scratch_repo(base)
    have = workspace.git(repo, "ls-tree", "--name-only", base.commit, "--",
                         SCRIPT, *SUPPORT_FILES).stdout.split()
    if SCRIPT not in have or "MAINTAINERS" not in have:
        raise KseriesError(
            f"base {base.label} has no {SCRIPT} or MAINTAINERS",
            hint="use a kernel tree that has them, or give the recipients in the manifest",
        )
    with tempfile.TemporaryDirectory(prefix="kseries-maint-") as tmp:
        archive = Path(tmp) / "maint.tar"
        proc.run(["git", "--git-dir", repo, "archive", "--format=tar", "-o", archive,
                  base.commit, *have], what="git archive of get_maintainer.pl")
        tree = Path(tmp) / "tree"
        with tarfile.open(archive) as tar:
            _extract(tar, tree)
        yield tree


def _extract(tar: tarfile.TarFile, tree: Path) -> None:
    """Unpack git archive's output: plain files and directories inside ``tree`` only.

    Debian 12's Python is 3.11.2, whose tarfile has no ``filter=`` (3.11.4 added
    it), so the members are checked here too, not only by ``filter="data"``.
    """
    safe = [m for m in tar.getmembers()
            if (m.isfile() or m.isdir()) and not Path(m.name).is_absolute()
            and ".." not in Path(m.name).parts]
    if len(safe) != len(tar.getmembers()):
        odd = next(m.name for m in tar.getmembers() if m not in safe)
        raise KseriesError(f"git archive of get_maintainer.pl holds an unexpected entry: {odd}")
    if hasattr(tarfile, "data_filter"):
        tar.extractall(tree, members=safe, filter="data")
    else:
        tar.extractall(tree, members=safe)


def get_maintainer(tool: Path, patch: Path) -> list[Listed]:
    """Who the base's get_maintainer.pl lists for one patch file, with roles."""
    res = proc.run(["perl", tool / SCRIPT, *OPTIONS, patch.resolve()], cwd=tool,
                   timeout=300, what=f"get_maintainer.pl {patch.name}")
    return parse(res.stdout)


def parse(output: str) -> list[Listed]:
    """Lines like ``Name <addr> (maintainer:SECTION,open list:SECTION)``."""
    out = []
    for line in output.splitlines():
        m = _LINE.match(line.strip())
        who, roles_text = (m.group("who"), m.group("roles")) if m else (line.strip(), "")
        name, address = parseaddr(who)
        if "@" not in address:
            continue
        roles = []
        for part in _ROLE_SPLIT.split(roles_text) if roles_text else []:
            kind, _, section = part.partition(":")
            roles.append(Role(kind.strip(), section.strip()))
        out.append(Listed(name, address, tuple(roles)))
    return out


def for_patches(base: Base, patches: Sequence[Path]) -> list[list[Listed]]:
    """get_maintainer.pl's list for each patch file, in order."""
    with maintainer_tool(base) as tool, ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda p: get_maintainer(tool, p), patches))


# --- a checked-out tree ----------------------------------------------------


def _addresses(tree: Path, *args: str | Path) -> list[str]:
    """The addresses ``scripts/get_maintainer.pl`` prints (no git history used)."""
    res = proc.run(["perl", tree / SCRIPT, "--no-rolestats", "--no-git", "--no-git-fallback",
                    "--no-tree", *args], cwd=tree, timeout=300, what="get_maintainer.pl")
    return [ln.strip() for ln in res.stdout.splitlines() if "@" in ln]


def maintained(tree: Path, path: str) -> bool:
    """Does a MAINTAINERS entry other than THE REST cover ``path`` (or its directory)?"""
    where = Path(path)
    while not (tree / where).exists() and where != Path("."):
        where = where.parent
    people = _addresses(tree, "--no-l", "-f", str(where))
    return any(parseaddr(p)[1] != "torvalds@linux-foundation.org" for p in people)
