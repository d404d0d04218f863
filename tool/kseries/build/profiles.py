"""Build profiles: what users choose to build, as data in templates/profiles/.

A profile names a base target (defconfig, tinyconfig), kconfig fragments
merged after it, CONFIG_ options that must hold after olddefconfig, and the
targets ``kseries build`` makes. ``extends`` takes another profile's fields
(options are merged, the extending profile's win); ``arch`` is make's ARCH
(i386 for a 32-bit kernel); ``worktree`` names the worktree of the base that
profiles build in, so that a matrix of profiles moves one worktree per patch.
Whether a profile applies to a base is data too: ``requires`` lists Kconfig
symbols the base must have, ``unless_depends`` Kconfig entries whose
``depends on`` naming a symbol rules the profile out. ``ccache`` is how
ccache finds a result: "preprocessor" (the default) also matches an object
whose preprocessed source is the same under another profile's config, which the
matrix's knob profiles live on; "depend" skips the second preprocessor run on a
miss and matches by the include files' contents only, for a profile no other
config shares objects with (the vm kernel: a miss there is the common case).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError

_FIELDS = {"description", "extends", "arch", "base_target", "fragments", "targets", "worktree",
           "requires", "unless_depends", "options", "per_patch", "ccache"}
PER_PATCH = ("targets", "series")
CCACHE_MODES = ("preprocessor", "depend")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    base_target: str  # "defconfig", "tinyconfig"
    fragments: tuple[Path, ...]  # kconfig fragments merged after the base target
    options: dict[str, str]  # CONFIG_ name (without prefix) -> y / m / n / value
    targets: tuple[str, ...]  # what `build` makes by default
    arch: str = ""  # make's ARCH= ("" for the host's)
    worktree: str = ""  # the worktree's name ("" for the profile's own)
    requires: tuple[str, ...] = ()  # Kconfig symbols the base must define
    unless_depends: tuple[tuple[str, str], ...] = ()  # (entry, symbol its depends on names)
    per_patch: str = "targets"  # what check builds at each patch (check/bisect.py)
    ccache: str = "preprocessor"  # how ccache matches (CCACHE_MODES)

    @property
    def tree(self) -> str:
        """The worktree this profile builds in (shared by a matrix of profiles)."""
        return self.worktree or self.name

    def stamp(self) -> str:
        h = hashlib.sha1(repr((self.base_target, self.arch,
                               sorted(self.options.items()))).encode())
        for f in self.fragments:
            h.update(f.read_bytes())
        return h.hexdigest()


def known(templates: Path) -> list[str]:
    return sorted(p.stem for p in (templates / "profiles").glob("*.toml"))


def _read(templates: Path, name: str, chain: tuple[str, ...]) -> dict[str, Any]:
    path = templates / "profiles" / f"{name}.toml"
    if not path.exists():
        where = f" (extended by {chain[-1]})" if chain else ""
        raise KseriesError(f"unknown build profile {name!r}{where}",
                           hint=f"known: {', '.join(known(templates))}")
    if name in chain:
        raise KseriesError(f"{path}: extends itself ({' -> '.join((*chain, name))})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise KseriesError(f"{path}: invalid TOML ({exc})") from exc
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise KseriesError(f"{path}: unknown field {unknown[0]!r}",
                           hint=f"a profile has: {', '.join(sorted(_FIELDS))}")
    parent = data.get("extends")
    if not parent:
        return data
    merged = dict(_read(templates, str(parent), (*chain, name)))
    merged.pop("extends", None)
    options = {**merged.get("options", {}), **data.get("options", {})}
    merged.update({k: v for k, v in data.items() if k not in ("extends", "options")})
    merged["options"] = options
    return merged


def load_profile(templates: Path, name: str) -> Profile:
    data = _read(templates, name, ())
    path = templates / "profiles" / f"{name}.toml"
    if "base_target" not in data:
        raise KseriesError(f"{path}: no base_target", hint='e.g. base_target = "defconfig"')
    per_patch = str(data.get("per_patch", "targets"))
    if per_patch not in PER_PATCH:
        raise KseriesError(f"{path}: per_patch = {per_patch!r}",
                           hint=f"one of: {', '.join(PER_PATCH)}")
    ccache = str(data.get("ccache", "preprocessor"))
    if ccache not in CCACHE_MODES:
        raise KseriesError(f"{path}: ccache = {ccache!r}",
                           hint=f"one of: {', '.join(CCACHE_MODES)}")
    root = templates.parent
    frags = tuple(root / f for f in data.get("fragments", []))
    for f in frags:
        if not f.exists():
            raise KseriesError(f"{path}: fragment {f} does not exist")
    return Profile(name, data.get("description", ""), data["base_target"], frags,
                   {k: str(v) for k, v in data.get("options", {}).items()},
                   tuple(data.get("targets", [])), str(data.get("arch", "")),
                   str(data.get("worktree", "")), tuple(data.get("requires", [])),
                   tuple((str(k), str(v)) for k, v in data.get("unless_depends", {}).items()),
                   per_patch, ccache)


def read_fragment(path: Path) -> dict[str, str]:
    """CONFIG_ assignments of a .config or fragment ("n" for "is not set")."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"CONFIG_(\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = re.match(r"# CONFIG_(\w+) is not set$", line)
        if m:
            out[m.group(1)] = "n"
    return out
