"""Bases: the kernel tree a series is rendered against.

A base is a git repository and a commit. ``debian:6.X`` fetches Debian's
``linux-source-6.X`` .deb at a pinned version from the suite that carries it
(archive.py: a private apt configuration in the cache; nothing is installed and
no root is needed), reads the source tarball out of it and imports that into a
cached bare repository as one commit with a fixed author and date, so the
commit id is the same on every machine and every Debian release.
``PATH[@REF]`` is any kernel git tree at a ref, used read-only: kseries writes
its own objects into a scratch repository that borrows the base's objects
through git alternates.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base import archive
from kseries.base.cache import cache_root, file_lock
from kseries.errors import KseriesError

IMPORT_IDENT = "kseries import <kseries@localhost>"
IMPORT_DATE = "946684800 +0000"  # 2000-01-01T00:00:00Z, the same on every machine
BASE_REF = "refs/heads/base"
KERNEL_MARKERS = ("Makefile", "Kbuild", "arch/x86/Kconfig", "scripts/checkpatch.pl")


@dataclass(frozen=True)
class Base:
    """A kernel tree at a commit, plus where kseries may write its own objects."""

    label: str  # what the user typed, e.g. "debian:6.12" or "/src/linux@v6.12"
    key: str  # a file-name-safe id, e.g. "debian-6.12" or "linux-3f1c2a9b"
    repo: Path  # the git directory holding the base commit (never written for PATH bases)
    commit: str  # full sha of the base commit
    describe: str  # a human description: "Debian linux-source-6.12 6.12.117-1~deb12u1"


@dataclass(frozen=True)
class DebianPin:
    series: str  # "6.12"
    package: str  # "linux-source-6.12"
    version: str  # "6.12.117-1~deb12u1"
    suites: tuple[str, ...]  # where to look for it: ("bookworm-security",)


def load_pins(templates: Path) -> dict[str, DebianPin]:
    """The pins of ``bases.toml``; a ``debian:6.X=VERSION`` looks in its ``search`` suites."""
    path = templates / "bases.toml"
    try:
        data = tomllib.loads(path.read_text())
        search = tuple(data.get("search", {}).get("suites", ()))
        pins = {}
        for series, entry in data.get("debian", {}).items():
            pins[series] = DebianPin(series, entry["package"], entry["version"],
                                     (entry["suite"], *search))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise KseriesError(f"{path}: cannot read the base pins ({exc!r})",
                           hint="each [debian.\"6.X\"] needs package, version and suite") from exc
    return pins


def resolve(spec: str, templates: Path, *, install: bool = True) -> Base:
    """Turn a ``--base`` value into a Base, importing a Debian tarball if needed."""
    if spec.startswith("debian:"):
        series, _, version = spec.removeprefix("debian:").partition("=")
        pins = load_pins(templates)
        if series not in pins:
            known = ", ".join(f"debian:{s}" for s in sorted(pins))
            raise KseriesError(f"unknown Debian base {spec!r}", hint=f"known: {known}")
        pin = pins[series]
        if version and version != pin.version:  # anywhere in the suites kseries searches
            pin = DebianPin(pin.series, pin.package, version, tuple(dict.fromkeys(pin.suites)))
        else:  # the pin: in its own suite alone
            pin = DebianPin(pin.series, pin.package, pin.version, pin.suites[:1])
        return debian_base(pin, install=install, label=spec)
    return git_base(spec)


def git_base(spec: str) -> Base:
    path_text, _, ref = spec.partition("@")
    path = Path(path_text).expanduser()
    if not path.exists():
        raise KseriesError(f"base {path}: no such directory", hint="give a kernel git tree")
    res = proc.run(
        ["git", "-C", path, "rev-parse", "--absolute-git-dir"], check=False
    )
    if not res.ok:
        raise KseriesError(
            f"base {path}: not a git repository", hint="give a kernel git tree, or debian:6.12"
        )
    gitdir = Path(res.stdout.strip())
    ref = ref or "HEAD"
    res = proc.run(
        ["git", "--git-dir", gitdir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        check=False,
    )
    if not res.ok:
        raise KseriesError(
            f"base {path}: unknown ref {ref!r}", hint="give a branch, tag or commit of that tree"
        )
    commit = res.stdout.strip()
    missing = [m for m in KERNEL_MARKERS if not _has_path(gitdir, commit, m)]
    if missing:
        raise KseriesError(
            f"base {path}@{ref}: not a kernel tree (no {missing[0]} at {commit[:12]})",
            hint="give the top of a Linux kernel tree",
        )
    digest = hashlib.sha1(str(gitdir.resolve()).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", path.resolve().name)
    return Base(spec, f"{name}-{digest}", gitdir, commit, f"{path}@{ref} ({commit[:12]})")


def _has_path(gitdir: Path, commit: str, path: str) -> bool:
    res = proc.run(
        ["git", "--git-dir", gitdir, "cat-file", "-e", f"{commit}:{path}"], check=False
    )
    return res.ok


# --- Debian tarballs -------------------------------------------------------


def debian_base(pin: DebianPin, *, install: bool = True, label: str = "") -> Base:
    """The imported base of ``pin``; with ``install`` False nothing is fetched."""
    repo = cache_root() / "bases" / f"debian-{pin.series}_{_safe(pin.version)}.git"
    describe = f"Debian {pin.package} {pin.version}"
    key = f"debian-{pin.series}"
    label = label or f"debian:{pin.series}"
    commit = _read_ref(repo)
    if commit:
        return Base(label, key, repo, commit, describe)
    if not install:
        raise KseriesError(f"{label} ({pin.package} {pin.version}) is not imported in "
                           f"{repo.parent}",
                           hint=f"import it first: kseries facts --base {label}")
    repo.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(repo.with_suffix(".lock")):
        commit = _read_ref(repo)  # another run may have finished the import meanwhile
        if not commit:
            work = repo.with_name(repo.name.removesuffix(".git") + ".fetch")
            try:
                tarball = _fetch_tarball(pin, label, work)
                commit = _import_tarball(repo, tarball, describe)
            finally:
                shutil.rmtree(work, ignore_errors=True)  # the .deb and tarball: 300 MB
    return Base(label, key, repo, commit, describe)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _read_ref(repo: Path) -> str:
    ref = repo / BASE_REF
    try:
        text = ref.read_text().strip()
    except OSError:
        return ""
    return text if re.fullmatch(r"[0-9a-f]{40}", text) else ""


def _fetch_tarball(pin: DebianPin, label: str, work: Path) -> Path:
    """Download ``pin``'s .deb into ``work`` and read its source tarball out of it."""
    a = archive.archive("bases-" + "+".join(pin.suites), pin.suites)
    try:
        deb = archive.fetch_binary(a, pin.package, pin.version, work)
    except KseriesError as exc:
        raise KseriesError(f"{label}: {exc.message}", hint=_other_versions(a, pin)) from exc
    name = f"{pin.package}.tar.xz"  # the import's commit message names it
    return archive.deb_file(deb, f"usr/src/{name}", work / name)


def _other_versions(a: archive.Archive, pin: DebianPin) -> str:
    """What to do when the pinned version cannot be had."""
    try:
        have = archive.binary_versions(a, pin.package)[:3]
    except KseriesError:
        have = []  # the archive itself is out of reach
    offer = f" (there: {', '.join(have)})" if have else ""
    net = "" if have else "check the network, or "
    return (f"{net}give a version the archive has, debian:{pin.series}=VERSION{offer}, or a kernel "
            f"tree with --base PATH[@REF]; set {archive.MIRROR_ENV} (and "
            f"{archive.SECURITY_ENV}) to use another mirror or a snapshot")


def _import_tarball(repo: Path, tarball: Path, describe: str) -> str:
    """Stream the tarball into ``git fast-import``: no 1.7 GB checkout on disk."""
    tmp = repo.with_name(repo.name + ".tmp")
    if tmp.exists():
        proc.run(["rm", "-rf", tmp])
    proc.run(["git", "init", "--quiet", "--bare", tmp])
    proc.run(["git", "--git-dir", tmp, "config", "gc.auto", "0"])
    proc.feed(
        ["git", "--git-dir", tmp, "fast-import", "--quiet", "--done"],
        _fast_import_stream(tarball, describe),
        what=f"import of {tarball}",
    )
    tmp.rename(repo)
    commit = _read_ref(repo)
    if not commit:
        raise KseriesError(f"import of {tarball} produced no commit in {repo}")
    return commit


def _fast_import_stream(tarball: Path, describe: str) -> Iterator[bytes]:
    name, email = IMPORT_IDENT.split(" <")
    message = f"{describe}\n\nImported from {tarball.name} by kseries.\n".encode()
    yield f"commit {BASE_REF}\n".encode()
    yield f"author {name} <{email} {IMPORT_DATE}\n".encode()
    yield f"committer {name} <{email} {IMPORT_DATE}\n".encode()
    yield f"data {len(message)}\n".encode() + message
    with tarfile.open(tarball, "r:xz") as tar:
        for member in tar:
            path = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not path:
                continue
            if member.issym():
                target = member.linkname.encode()
                yield f"M 120000 inline {_quote(path)}\ndata {len(target)}\n".encode()
                yield target + b"\n"
            elif member.isfile() or member.islnk():
                fh = tar.extractfile(member)
                data = fh.read() if fh else b""
                mode = "100755" if member.mode & 0o111 else "100644"
                yield f"M {mode} inline {_quote(path)}\ndata {len(data)}\n".encode()
                yield data + b"\n"
    yield b"\ndone\n"


def _quote(path: str) -> str:
    if any(c in path for c in '"\\\n') or path.startswith(" "):
        escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return path
