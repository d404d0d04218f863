"""Who a series goes to, and why each address is there.

The manifest names the lists and people it always wants; the base's own
``scripts/get_maintainer.pl`` (kseries.base.maintainers) adds the maintainers,
reviewers and lists of the files each patch touches; the trailers add the
co-authors. Each address appears once (compared case-insensitively), with
every reason it is there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import formataddr, parseaddr
from pathlib import Path

from kseries.base.bases import Base
from kseries.base.maintainers import Listed, Role, for_patches
from kseries.errors import KseriesError
from kseries.render.manifest import Manifest

TO, CC = "To", "Cc"


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
