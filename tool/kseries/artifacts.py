"""What `kseries build` produced, recorded so that `run` and `pipeline` find it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kseries.base import Base, cache_root
from kseries.errors import KseriesError


@dataclass(frozen=True)
class Artifacts:
    profile: str
    commit: str  # what was built: the series tip, or the base commit when unpatched
    patched: bool
    kernel: Path | None  # bzImage, for profiles that make one
    selftests: dict[str, Path]
    build_dir: Path

    def to_json(self) -> dict[str, object]:
        return {"profile": self.profile, "commit": self.commit, "patched": self.patched,
                "kernel": str(self.kernel) if self.kernel else None,
                "selftests": {k: str(v) for k, v in self.selftests.items()},
                "build_dir": str(self.build_dir)}


def record_path(base: Base, profile: str, patched: bool) -> Path:
    name = profile if patched else f"{profile}-base"
    return cache_root() / "build" / base.key / f"{name}.artifacts.json"


def save(base: Base, a: Artifacts) -> Path:
    path = record_path(base, a.profile, a.patched)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(a.to_json(), indent=2) + "\n")
    return path


def load(base: Base, profile: str, patched: bool = True) -> Artifacts:
    path = record_path(base, profile, patched)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        what = "the series" if patched else "the unpatched base"
        flag = "" if patched else " --unpatched"
        raise KseriesError(
            f"no {profile} build of {what} for {base.label}",
            hint=f"run: kseries build --base {base.label} --profile {profile}{flag}",
        ) from exc
    return Artifacts(d["profile"], d["commit"], d["patched"],
                     Path(d["kernel"]) if d["kernel"] else None,
                     {k: Path(v) for k, v in d["selftests"].items()}, Path(d["build_dir"]))
