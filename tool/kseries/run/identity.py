"""What a run tested: the series and kernel (``SeriesId``) and each host's CPU as seen.

``kseries run`` writes both into its results (summary.json, <host>/result.json),
so that results made on another machine can be matched with the series being
submitted: same base commit, same series tip, and the kernel image's sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.base.bases import Base
from kseries.build import artifacts
from kseries.errors import KseriesError
from kseries.render.manifest import Manifest
from kseries.run.initramfs import digest

VM_PROFILE = "vm"  # the build profile whose bzImage the harness boots


@dataclass(frozen=True)
class SeriesId:
    """The series a kernel was built from, as far as the run knows it.

    ``tip`` is "" when the kernel is not one that kseries build recorded (then
    ``how`` says so); an unpatched run's ``tip`` is "" and ``patched`` False.
    """

    name: str = ""
    version: int = 0
    tip: str = ""
    patched: bool = True
    base_label: str = ""
    base_commit: str = ""
    base_describe: str = ""
    kernel_sha256: str = ""
    how: str = ""  # how the tip was learnt, or why it is unknown

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "tip": self.tip,
                "patched": self.patched, "kernel_sha256": self.kernel_sha256,
                "how": self.how,
                "base": {"label": self.base_label, "commit": self.base_commit,
                         "describe": self.base_describe}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SeriesId:
        base = d.get("base") or {}
        return cls(str(d.get("name", "")), int(d.get("version", 0)), str(d.get("tip", "")),
                   bool(d.get("patched", True)), str(base.get("label", "")),
                   str(base.get("commit", "")), str(base.get("describe", "")),
                   str(d.get("kernel_sha256", "")), str(d.get("how", "")))


@dataclass(frozen=True)
class Seen:
    """A host as its own /proc/cpuinfo and uname showed it during the run."""

    cpu_vendor: str = ""  # vendor_id, e.g. AuthenticAMD
    cpu_model: str = ""  # model name
    cpu_flags: tuple[str, ...] = ()
    virt: str = ""  # the series' /proc/cpuinfo virt line, "" if none
    kernel_release: str = ""  # uname -r

    def to_json(self) -> dict[str, Any]:
        return {"cpu_vendor": self.cpu_vendor, "cpu_model": self.cpu_model,
                "cpu_flags": list(self.cpu_flags), "virt": self.virt,
                "kernel_release": self.kernel_release}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Seen:
        return cls(str(d.get("cpu_vendor", "")), str(d.get("cpu_model", "")),
                   tuple(str(f) for f in d.get("cpu_flags", [])), str(d.get("virt", "")),
                   str(d.get("kernel_release", "")))


sha256_of = digest  # the kernel's identity in the results: its sha256


def identify(kernel: Path | None, base: Base | None, base_label: str, manifest: Manifest,
             *, patched: bool) -> SeriesId:
    """What ``kernel`` was built from: the `kseries build` record (of ``base``) it matches.

    A kernel is matched by its sha256 with the bzImage the vm profile's build
    records name; the tip is the record's commit. Otherwise the tip is unknown.
    """
    sha = sha256_of(kernel) if kernel is not None and kernel.is_file() else ""
    name, version = manifest.name, manifest.version
    if base is None:
        return SeriesId(name, version, "", patched, base_label, "", "", sha,
                        f"the base {base_label} is not known here: the series tip is unknown")
    def found(tip: str, is_patched: bool, how: str) -> SeriesId:
        return SeriesId(name, version, tip, is_patched, base.label, base.commit, base.describe,
                        sha, how)

    for recorded in (True, False):
        try:
            built = artifacts.load(base, VM_PROFILE, manifest.id, patched=recorded)
        except KseriesError:
            continue
        if sha and built.kernel is not None and built.kernel.is_file() and (
                sha256_of(built.kernel) == sha):
            flag = f" --series {manifest.id}" if recorded else " --unpatched"
            how = f"the kernel of `kseries build --profile {VM_PROFILE}{flag}` at {built.commit}"
            return found(built.commit if recorded else "", recorded, how)
    why = ("no kernel was given" if not sha else
           f"the kernel is not one that `kseries build` recorded for {base.label} "
           "(build it there, or pass the --base it was built for): the series tip is unknown")
    return found("", patched, why)
