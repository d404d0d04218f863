"""Build profiles: what users choose to build, as data in templates/profiles/.

A profile names a base target (defconfig, tinyconfig), kconfig fragments
merged after it, CONFIG_ options that must hold after olddefconfig, and the
targets ``kseries build`` makes.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kseries.errors import KseriesError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    base_target: str  # "defconfig", "tinyconfig"
    fragments: tuple[Path, ...]  # kconfig fragments merged after the base target
    options: dict[str, str]  # CONFIG_ name (without prefix) -> y / m / n / value
    targets: tuple[str, ...]  # what `build` makes by default

    def stamp(self) -> str:
        h = hashlib.sha1(repr((self.base_target, sorted(self.options.items()))).encode())
        for f in self.fragments:
            h.update(f.read_bytes())
        return h.hexdigest()


def load_profile(templates: Path, name: str) -> Profile:
    path = templates / "profiles" / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in (templates / "profiles").glob("*.toml"))
        raise KseriesError(f"unknown build profile {name!r}", hint=f"known: {', '.join(known)}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise KseriesError(f"{path}: invalid TOML ({exc})") from exc
    root = templates.parent
    frags = tuple(root / f for f in data.get("fragments", []))
    for f in frags:
        if not f.exists():
            raise KseriesError(f"{path}: fragment {f} does not exist")
    return Profile(name, data.get("description", ""), data["base_target"], frags,
                   {k: str(v) for k, v in data.get("options", {}).items()},
                   tuple(data.get("targets", [])))


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
