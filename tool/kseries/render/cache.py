"""Re-renders of unchanged inputs reuse the commits of the last render.

A render is a pure function of the base commit, the files of the series
directory and kselftest/, and the code that probes, edits and writes commits. Their digest
keys a small record (the commits and the probed facts) under the cache; a
record is used only while its commits are still in the scratch repository.
The patch files are always written by git format-patch again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from kseries.base.bases import Base
from kseries.base.cache import cache_root, write_atomic
from kseries.render.probe import Facts, facts_from_json
from kseries.render.templating import search_path

# The modules whose code decides a render's commits, relative to the package.
CODE = ("render/series.py", "render/probe.py", "render/rip.py", "render/reading.py",
        "render/edits.py", "render/csource.py", "base/objects.py", "render/templating.py",
        "render/manifest.py", "render/cache.py", "render/backport.py")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def inputs_key(base: Base, series: Path, kselftest: Path, variant: str = "") -> str:
    """``variant``: what else shapes the commits (a backport's tree and sender)."""
    h = hashlib.sha256(base.commit.encode())
    if variant:
        h.update(f"\0variant\0{variant}".encode())
    package = Path(__file__).parents[1]
    roots = [*search_path(series, kselftest), package]
    files = [*(_files(d) for d in roots[:-1]), [package / name for name in CODE]]
    for i, (root, paths) in enumerate(zip(roots, files, strict=True)):
        for path in paths:
            h.update(f"\0{i}\0{path.relative_to(root)}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:32]


def _record(base: Base, key: str) -> Path:
    return cache_root() / "render" / base.key / f"{key}.json"


def load(base: Base, key: str, scratch: Path) -> tuple[list[str], Facts] | None:
    try:
        data = json.loads(_record(base, key).read_text())
        commits = [str(c) for c in data["commits"]]
        facts = facts_from_json(data["facts"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    objects = scratch / "objects"
    if not commits or not all((objects / c[:2] / c[2:]).exists() for c in commits):
        return None
    return commits, facts


def save(base: Base, key: str, commits: list[str], facts: Facts) -> None:
    record = {"commits": commits, "facts": dataclasses.asdict(facts)}
    write_atomic(_record(base, key), json.dumps(record))
