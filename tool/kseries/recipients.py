"""Who a series goes to, and why each address is there.

The manifest names the lists and people it always wants; the base's own
``scripts/get_maintainer.pl`` adds the maintainers, reviewers and lists of the
files each patch touches; the trailers add the co-authors. Each address
appears once (compared case-insensitively), with every reason it is there.

``get_maintainer.pl`` needs only ``MAINTAINERS``, ``.mailmap`` and itself when
run with ``--no-tree --no-git``: those are taken from the base commit with
``git archive`` into a temporary directory, so no checkout is needed.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from pathlib import Path

from kseries import proc, workspace
from kseries.base import Base
from kseries.errors import KseriesError
from kseries.series import Manifest

SCRIPT = "scripts/get_maintainer.pl"
SUPPORT_FILES = ("MAINTAINERS", ".mailmap", ".get_maintainer.conf", ".get_maintainer.ignore")
# Without history (the Debian bases have none) and with one role list per line.
OPTIONS = ("--no-tree", "--no-git", "--no-git-fallback", "--roles", "--no-rolestats",
           "--multiline", "--m", "--r", "--l", "--n")
_LINE = re.compile(r"^(?P<who>.*?)\s+\((?P<roles>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*$")
_ROLE_SPLIT = re.compile(r",(?=[a-z])")
TO, CC = "To", "Cc"


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


@dataclass
class Recipient:
    name: str
    address: str
    header: str  # TO or CC
    reasons: list[str] = field(default_factory=list)

    @property
    def ident(self) -> str:
        return formataddr((self.name, self.address)) if self.name else self.address


@dataclass(frozen=True)
class Recipients:
    entries: tuple[Recipient, ...]
    sender: str

    @property
    def to(self) -> tuple[str, ...]:
        return tuple(r.ident for r in self.entries if r.header == TO)

    @property
    def cc(self) -> tuple[str, ...]:
        return tuple(r.ident for r in self.entries if r.header == CC)

    def find(self, address: str) -> Recipient | None:
        for r in self.entries:
            if r.address.lower() == address.lower():
                return r
        return None


# --- get_maintainer.pl -----------------------------------------------------


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
            tar.extractall(tree, filter="data")
        yield tree


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


# --- merging ---------------------------------------------------------------


def _numbers(patches: Iterable[int]) -> str:
    nums = sorted(set(patches))
    return ("patch " if len(nums) == 1 else "patches ") + ", ".join(map(str, nums))


def merge(manifest: Manifest, listed: Sequence[Sequence[Listed]]) -> Recipients:
    """The manifest's To/Cc, then get_maintainer's and the trailers' people, each once.

    ``listed[i]`` is get_maintainer's output for patch i+1. The manifest's To
    stay in To; everything else goes to Cc. The sender is left out (git
    send-email and b4 do not mail the sender a copy).
    """
    entries: dict[str, Recipient] = {}
    roles: dict[str, dict[Role, list[int]]] = {}
    sender = manifest.sender.email.lower()

    def add(ident: str, header: str, reason: str = "") -> Recipient:
        name, address = parseaddr(ident)
        if "@" not in address:
            raise KseriesError(f"recipient {ident!r}: not an e-mail address",
                               hint="fix templates/series.toml")
        key = address.lower()
        if key not in entries:
            entries[key] = Recipient(name, address, header)
        entry = entries[key]
        if name and not entry.name:
            entry.name = name
        if reason and reason not in entry.reasons:
            entry.reasons.append(reason)
        return entry

    for ident in manifest.to:
        add(ident, TO, "manifest To")
    for ident in manifest.cc:
        add(ident, CC, "manifest Cc")
    for number, people in enumerate(listed, start=1):
        for person in people:
            if person.address.lower() == sender:
                continue
            add(formataddr((person.name, person.address)), CC)
            by_role = roles.setdefault(person.address.lower(), {})
            for role in person.roles or (Role("get_maintainer.pl", ""),):
                by_role.setdefault(role, []).append(number)
    trailers: dict[str, dict[str, list[int]]] = {}
    for patch in manifest.patches:
        for t in patch.trailers:
            if t.person.email.lower() == sender:
                continue
            trailers.setdefault(t.person.ident, {}).setdefault(t.tag, []).append(patch.number)
    for ident, tags in trailers.items():
        add(ident, CC, "; ".join(f"{tag} in {_numbers(n)}" for tag, n in tags.items()))
    for key, by_role in roles.items():
        for role, numbers in by_role.items():
            reason = f"{role} ({_numbers(numbers)})"
            if reason not in entries[key].reasons:
                entries[key].reasons.append(reason)
    return Recipients(tuple(entries.values()), manifest.sender.ident)


def collect(base: Base, manifest: Manifest, patches: Sequence[Path]) -> Recipients:
    """The series' recipients: the manifest's plus the base's get_maintainer.pl for ``patches``."""
    return merge(manifest, for_patches(base, patches))
