"""The emulated host's QEMU: Debian's QEMU source with kseries' Bus Lock Threshold model.

No machine here has the Bus Lock Threshold, so the emulated AMD host runs on a
QEMU whose TCG models it (APM vol. 2, 15.14.5). This module builds that QEMU
once per machine and caches it:

1. fetch Debian's ``qemu`` source package at the pinned version
   (``kselftest/emulator/emulator.toml``) through kseries' private apt
   configuration (``base/archive.py``);
2. unpack it with ``dpkg-source -x`` (Debian's own patches applied) and apply
   the project's patch (``kselftest/emulator/*.patch``);
3. configure ``x86_64-softmmu`` only, with what the harness uses, and build it
   with ninja (ccache under the kseries cache; progress from ninja's lines).

The result is keyed by the source version, the patch's and the options' hash:
``<cache>/emulator/<key>/qemu-system-x86_64``. It is moved there whole after a
successful build, so an interrupted build is never taken for a finished one;
the next run picks up the half-built directory and ninja goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base import archive
from kseries.base.cache import cache_root, file_lock, write_atomic
from kseries.errors import KseriesError
from kseries.progress import NullReporter, Reporter

BINARY = "qemu-system-x86_64"
_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


@dataclass(frozen=True)
class Spec:
    """What to build: the data in kselftest/emulator/emulator.toml."""

    package: str
    version: str
    suite: str
    accept: str
    patch: Path
    target: str
    configure: tuple[str, ...]
    firmware: tuple[Path, ...]  # where QEMU looks for firmware (-L), in order
    model: str
    cpu_flag: str
    trace: str

    def key(self, version: str | None = None) -> str:
        h = hashlib.sha256()
        for part in (version or self.version, self.patch.read_bytes().decode(errors="replace"),
                     self.target, *self.configure):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Emulator:
    """A built QEMU with the model, and what it is, for the results."""

    binary: Path
    version: str  # Debian's source version it was built from
    spec: Spec

    @property
    def label(self) -> str:
        return f"QEMU {self.version} (Debian) + {self.spec.model}"

    def describe(self) -> dict[str, str]:
        return {"qemu": self.version, "model": self.spec.model, "binary": str(self.binary),
                "patch": self.spec.patch.name}


def load_spec(kselftest: Path) -> Spec:
    path = kselftest / "emulator" / "emulator.toml"
    try:
        q = tomllib.loads(path.read_text())["qemu"]
        patch = path.parent / q["patch"]
        return Spec(q["package"], q["version"], q["suite"], q.get("accept", ""), patch,
                    q["target"], tuple(q["configure"]), tuple(map(Path, q["firmware"])),
                    q["model"],
                    q["cpu_flag"], q["trace"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise KseriesError(f"{path}: cannot read the emulator's description ({exc})") from exc


def root() -> Path:
    return cache_root() / "emulator"


def find(spec: Spec) -> Emulator | None:
    """The emulator built from ``spec``, if this machine has it."""
    for info in sorted(root().glob("*/info.json")):
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        binary = info.parent / BINARY
        if info.parent.name == spec.key(data.get("version")) and binary.is_file():
            return Emulator(binary, str(data["version"]), spec)
    return None


def ensure(spec: Spec, *, reporter: Reporter | None = None, rebuild: bool = False) -> Emulator:
    """The emulator for ``spec``: the cached one, or built now (once per machine)."""
    reporter = reporter or NullReporter()
    with file_lock(root() / "build.lock"):  # two runs: the second waits, then finds it
        if not rebuild:
            found = find(spec)
            if found is not None:
                return found
        if not spec.patch.is_file():
            raise KseriesError(f"{spec.patch}: the emulator's patch is missing",
                               hint="restore it from the kseries checkout")
        return _build(spec, reporter)


def _build(spec: Spec, reporter: Reporter) -> Emulator:
    a = archive.archive(spec.suite, (spec.suite,))
    reporter.update(f"fetching {spec.package} {spec.version} from {a.mirror} ({spec.suite})")
    version = _available_version(a, spec, reporter)
    key = spec.key(version)
    work = root() / f"work-{key}"
    src, out = work / "src", work / "build"
    dl = root() / "downloads" / version.replace(":", "_")
    _unpack(a, spec, version, dl, src, reporter)
    env = _env()
    if not (out / "build.ninja").is_file():
        reporter.update(f"configuring {spec.target}")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        proc.run([src / "configure", f"--python={sys.executable}",
                  f"--target-list={spec.target}", *spec.configure],
                 cwd=out, env=env, log_to=work / "configure.log", timeout=1800,
                 what=f"configure of {spec.package} {version}")
    _ninja(out, env, work / "build.log", reporter)
    final = root() / key
    tmp = root() / f".{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copy2(out / BINARY, tmp / BINARY)
    write_atomic(tmp / "info.json", json.dumps(
        {"version": version, "patch": spec.patch.name, "target": spec.target,
         "configure": list(spec.configure)}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return Emulator(final / BINARY, version, spec)


def _env() -> dict[str, str]:
    env = {"LC_ALL": "C",
           # the venv's meson (bookworm's is too old for QEMU 10), then the system's tools
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if shutil.which("ccache"):
        env.update(CC="ccache gcc", CCACHE_DIR=str(cache_root() / "ccache"),
                   CCACHE_BASEDIR=str(root()))
    return env


def _available_version(a: archive.Archive, spec: Spec, reporter: Reporter) -> str:
    """The pinned version, or (if the archive no longer has it) the newest accepted one."""
    versions = archive.source_versions(a, spec.package)
    if spec.version in versions:
        return spec.version
    accepted = [v for v in versions if spec.accept and v.startswith(spec.accept)]
    if not accepted:
        have = ", ".join(versions) or "none"
        raise KseriesError(
            f"{spec.package} {spec.version} is not in {spec.suite} at {a.mirror} "
            f"(it has: {have})",
            hint="set version in kselftest/emulator/emulator.toml to one it has "
                 f"(the patch is for {spec.accept or spec.version}*), or set "
                 f"{archive.MIRROR_ENV} to a mirror that keeps it")
    chosen = accepted[0]
    reporter.note(f"{spec.package} {spec.version} is gone from {spec.suite}; "
                  f"building {chosen} instead")
    return chosen


def _unpack(a: archive.Archive, spec: Spec, version: str, dl: Path, src: Path,
            reporter: Reporter) -> None:
    """Debian's source with Debian's patches and the project's, once (a stamp says so)."""
    stamp = src.parent / "src.stamp"
    if stamp.is_file():
        return
    dsc = archive.fetch_source(a, spec.package, version, dl)
    reporter.update(f"unpacking {dsc.name} (dpkg-source, Debian's patches)")
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(src.parent / "build", ignore_errors=True)
    src.parent.mkdir(parents=True, exist_ok=True)
    proc.run(["dpkg-source", "--no-copy", "-x", dsc, src],
             env={"LC_ALL": "C"}, log_to=src.parent / "unpack.log", timeout=1800,
             what=f"dpkg-source -x {dsc.name}")
    reporter.update(f"applying {spec.patch.name}")
    res = proc.run(["patch", "-p1", "--forward", "--batch", "-d", src, "-i", spec.patch],
                   check=False, what=f"patch {spec.patch.name}")
    if not res.ok:
        shutil.rmtree(src, ignore_errors=True)
        first = next((ln for ln in res.stdout.splitlines() if "FAILED" in ln or "failed" in ln),
                     f"exit {res.returncode}")
        raise KseriesError(
            f"{spec.patch}: does not apply to {spec.package} {version} ({first.strip()})",
            hint="port the patch to this version, or pin the version it was made for "
                 "in kselftest/emulator/emulator.toml")
    write_atomic(stamp, f"{version} {spec.key(version)}\n")


def _ninja(out: Path, env: dict[str, str], log: Path, reporter: Reporter) -> None:
    """Build the one binary, reporting ninja's [n/N] as it goes."""
    log.unlink(missing_ok=True)
    running = proc.spawn(["ninja", "-C", str(out), BINARY], log_to=log, env=env)
    last = ""
    try:
        while not running.ended():
            step = _last_step(log)
            if step and step != last:
                reporter.update(f"building {BINARY}: {step}")
                last = step
            time.sleep(1.0)
        result = running.wait()
    except BaseException:
        running.stop()
        raise
    if not result.ok:
        detail = " ".join(proc.key_lines(result.stdout, 1)) or f"exit {result.returncode}"
        raise KseriesError(f"the emulator's build failed ({detail})", hint=f"full log: {log}")


def _last_step(log: Path) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(max(0, log.stat().st_size - 4096))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        m = _NINJA_STEP.match(line)
        if m:
            return f"{m.group(1)}/{m.group(2)}"
    return ""
