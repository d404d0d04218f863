"""Debian's archive, reached through a private apt configuration in the cache.

kseries fetches what it needs from Debian (a source package such as QEMU's, a
``linux-source`` tarball) without touching the machine's apt set-up: it writes
its own source list and keeps its own package lists under
``<cache>/apt/<name>/``, and runs ``apt-get`` with options that point there
(``Dir::Etc::SourceList``, ``Dir::State::Lists``, ``Dir::Cache``). The
machine's ``/etc/apt`` is read (for its mirror and trusted keys), never
written, and nothing is installed.

The mirror is the one the machine's apt uses for Debian, unless
``KSERIES_DEBIAN_MIRROR`` names another. Suites named ``*-security`` come from
the security archive: the machine's, unless ``KSERIES_DEBIAN_SECURITY_MIRROR``
names another (with only ``KSERIES_DEBIAN_MIRROR`` set, its ``debian-security``
sibling, which is how deb.debian.org and snapshot.debian.org lay them out).

``fetch_source`` downloads a source package, ``fetch_binary`` a binary one
(``apt-get download``); ``deb_file`` reads one file out of a .deb without dpkg.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base.cache import cache_root, file_lock
from kseries.errors import KseriesError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "KSERIES_DEBIAN_MIRROR"
SECURITY_ENV = "KSERIES_DEBIAN_SECURITY_MIRROR"
APT_SOURCES = Path("/etc/apt")
# Debian's archive keys (debian-archive-keyring, on 12 and 13 alike): the lists are
# checked against these alone, as Debian's own deb822 sources do with Signed-By.
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# A URI whose path ends in /debian serves Debian's main archive (not -security, not
# a third-party repository).
_DEBIAN_URI = re.compile(r"^(https?|file)://\S+/debian/?$")
_SECURITY_URI = re.compile(r"^(https?|file)://\S+/debian-security/?$")


@dataclass(frozen=True)
class Archive:
    """Some suites of Debian's archive, with binary and source packages."""

    name: str  # the private configuration's directory under <cache>/apt/
    suites: tuple[str, ...]  # e.g. ("trixie",)
    mirror: str
    security: str = ""  # the mirror of the *-security suites ("": derived from mirror)

    @property
    def root(self) -> Path:
        return cache_root() / "apt" / self.name

    def options(self) -> list[str]:
        """apt-get options that keep every file of this configuration under ``root``."""
        r = self.root
        opts = {
            "Dir::Etc::SourceList": r / "sources.list",
            "Dir::Etc::SourceParts": r / "sources.list.d",
            "Dir::State::Lists": r / "lists",
            "Dir::Cache": r / "cache",
            "Dir::State::status": r / "status",
        }
        out = [f"-o{k}={v}" for k, v in opts.items()]
        if os.geteuid() == 0:  # apt would hand downloads to _apt, who cannot write here
            out.append("-oAPT::Sandbox::User=root")
        return out

    def uri(self, suite: str) -> str:
        """Where ``suite`` is: the security archive for ``*-security``, else the mirror."""
        if suite.endswith("-security"):
            return self.security or security_sibling(self.mirror)
        return self.mirror

    def sources(self) -> str:
        signed = f"[signed-by={KEYRING}] " if KEYRING.is_file() else ""
        lines = [f"{kind} {signed}{self.uri(suite)} {suite} main"
                 for suite in self.suites for kind in ("deb", "deb-src")]
        return "\n".join(lines) + "\n"

    def where(self) -> str:
        """The suites and their mirrors, for messages: "bookworm-security at URI"."""
        by_uri: dict[str, list[str]] = {}
        for suite in self.suites:
            by_uri.setdefault(self.uri(suite), []).append(suite)
        return "; ".join(f"{', '.join(suites)} at {uri}" for uri, suites in by_uri.items())


def archive(name: str, suites: tuple[str, ...]) -> Archive:
    return Archive(name, suites, machine_mirror(), machine_security_mirror())


def machine_mirror(etc: Path = APT_SOURCES) -> str:
    """The Debian mirror of this machine's apt (``KSERIES_DEBIAN_MIRROR`` first)."""
    forced = os.environ.get(MIRROR_ENV, "").strip()
    if forced:
        return forced.rstrip("/")
    for uri in _apt_uris(etc):
        if _DEBIAN_URI.match(uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def machine_security_mirror(etc: Path = APT_SOURCES) -> str:
    """The mirror of Debian's security archive (``KSERIES_DEBIAN_SECURITY_MIRROR`` first).

    With ``KSERIES_DEBIAN_MIRROR`` set and no security mirror named, the main
    mirror's ``debian-security`` sibling: the machine's would not match it.
    """
    forced = os.environ.get(SECURITY_ENV, "").strip()
    if forced:
        return forced.rstrip("/")
    if os.environ.get(MIRROR_ENV, "").strip():
        return security_sibling(machine_mirror(etc))
    for uri in _apt_uris(etc):
        if _SECURITY_URI.match(uri):
            return uri.rstrip("/")
    return security_sibling(machine_mirror(etc))


def security_sibling(mirror: str) -> str:
    """``.../debian[/STAMP]`` -> ``.../debian-security[/STAMP]`` (deb. and snapshot.debian.org)."""
    head, sep, tail = mirror.rstrip("/").rpartition("/debian")
    if sep and (not tail or tail.startswith("/")):
        return f"{head}/debian-security{tail}"
    return DEFAULT_MIRROR + "-security"


def _apt_uris(etc: Path) -> list[str]:
    """The URIs of the machine's apt sources, deb822 and one-line style, in order."""
    files = [etc / "sources.list"]
    parts = etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    uris: list[str] = []
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                uris += line.removeprefix("URIs:").split()
            elif re.match(r"^deb(-src)?\s", line):
                words = [w for w in line.split()[1:] if not w.startswith("[")]
                if words and not words[0].endswith("]"):
                    uris.append(words[0])
    return uris


def prepare(a: Archive, *, refresh: bool = False) -> None:
    """Write the configuration and fetch the package lists (once, or again if asked)."""
    r = a.root
    with file_lock(r.parent / f"{a.name}.lock"):
        fresh = (r / "sources.list").is_file() and (r / "sources.list").read_text() == a.sources()
        lists = r / "lists"
        if fresh and not refresh and any(lists.glob("*_Sources*")):
            return
        for d in (lists / "partial", r / "cache" / "archives" / "partial", r / "sources.list.d"):
            d.mkdir(parents=True, exist_ok=True)
        (r / "status").touch()
        (r / "sources.list").write_text(a.sources())
        res = proc.run(["apt-get", *a.options(), "-q", "update"], check=False,
                       what="apt-get update (kseries' own apt configuration)", timeout=600)
        failed = [ln for ln in (res.stdout + res.stderr).splitlines()
                  if ln.startswith(("E:", "Err:", "W: Failed"))]
        if not res.ok or failed:
            detail = failed[0] if failed else f"exit {res.returncode}"
            raise KseriesError(
                f"cannot reach Debian's archive ({a.where()}): {detail}",
                hint=f"check the network, or set {MIRROR_ENV} to a mirror that carries "
                     f"{', '.join(a.suites)}")


def fetch_source(a: Archive, package: str, version: str, dest: Path) -> Path:
    """Download ``package``'s source at ``version`` (dsc and tarballs) into ``dest``.

    Returns the .dsc's path. The files are checked by apt against the archive's
    signed lists.
    """
    prepare(a)
    dest.mkdir(parents=True, exist_ok=True)
    want = f"{package}={version}"
    for attempt in (0, 1):
        res = proc.run(["apt-get", *a.options(), "-q", "source", "--download-only", want],
                       cwd=dest, check=False, what=f"apt-get source {want}", timeout=1800)
        dsc = dest / f"{package}_{version.split(':')[-1]}.dsc"
        if res.ok and dsc.is_file():
            return dsc
        if attempt == 0:
            prepare(a, refresh=True)  # the lists may be older than the archive
    detail = " ".join(proc.key_lines(res.stderr or res.stdout, 2)) or f"exit {res.returncode}"
    raise KseriesError(
        f"cannot fetch the source package {want} from {a.mirror} "
        f"({', '.join(a.suites)}): {detail}",
        hint="the version may be gone from the archive: see `apt-cache showsrc` there, "
             f"or set {MIRROR_ENV} to a mirror (or snapshot) that has it")


def source_versions(a: Archive, package: str) -> list[str]:
    """The versions of source package ``package`` that the archive offers, newest first."""
    prepare(a)
    return _madison(a, package, sources=True)


def binary_versions(a: Archive, package: str) -> list[str]:
    """The versions of binary ``package`` in the lists as last fetched, newest first."""
    return _madison(a, package, sources=False)


def _madison(a: Archive, package: str, *, sources: bool) -> list[str]:
    """``apt-cache madison``'s versions of ``package`` (apt orders them, newest first),
    of the source package or of the binary one."""
    res = proc.run(["apt-cache", *a.options(), "madison", package], check=False,
                   what=f"apt-cache madison {package}")
    seen: list[str] = []
    for line in res.stdout.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 3 and fields[0] == package \
                and ("Sources" in fields[2]) == sources and fields[1] not in seen:
            seen.append(fields[1])
    return seen


def fetch_binary(a: Archive, package: str, version: str, dest: Path) -> Path:
    """Download the binary package ``package`` at ``version`` into ``dest`` (no install).

    Returns the .deb's path. apt checks it against the archive's signed lists.
    """
    prepare(a)
    dest.mkdir(parents=True, exist_ok=True)
    want = f"{package}={version}"
    name = f"{package}_{version.replace(':', '%3a')}_"
    for attempt in (0, 1):
        res = proc.run(["apt-get", *a.options(), "-q", "download", want], cwd=dest,
                       check=False, what=f"apt-get download {want}", timeout=1800)
        debs = sorted(dest.glob(f"{name}*.deb"))
        if res.ok and debs:
            return debs[0]
        if attempt == 0:
            prepare(a, refresh=True)  # the lists may be older than the archive
    detail = " ".join(proc.key_lines(res.stderr or res.stdout, 2)) or f"exit {res.returncode}"
    raise KseriesError(f"cannot fetch {want} from Debian's archive ({a.where()}): {detail}",
                       hint=f"see `apt-cache madison {package}` there, or set {MIRROR_ENV} "
                            "to a mirror (or snapshot) that has it")


def deb_file(deb: Path, member: str, dest: Path) -> Path:
    """Copy the file ``member`` (e.g. ``usr/src/x.tar.xz``) out of ``deb`` to ``dest``.

    A .deb is an ar archive whose ``data.tar[.xz|.gz]`` holds the files; this
    reads it with Python alone (no dpkg, no root). ``dest`` appears whole or not
    at all.
    """
    want = member.lstrip("./")
    with deb.open("rb") as fh:
        data, size = _ar_member(fh, deb, "data.tar")
        with _stream(deb, data, io.BufferedReader(_Slice(fh, size))) as tar:
            for info in tar:
                if info.name.lstrip("./") == want and info.isfile():
                    src = tar.extractfile(info)
                    assert src is not None  # a regular file
                    part = dest.with_name(dest.name + ".part")
                    with part.open("wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    part.rename(dest)
                    return dest
    raise KseriesError(f"{deb} holds no {want}", hint="is it the right package?")


def _stream(deb: Path, name: str, fh: io.BufferedReader) -> tarfile.TarFile:
    """The tar stream of ``data.tar[.xz|.gz]``, read as it comes."""
    if name == "data.tar.xz":
        return tarfile.open(fileobj=fh, mode="r|xz")
    if name == "data.tar.gz":
        return tarfile.open(fileobj=fh, mode="r|gz")
    if name == "data.tar":
        return tarfile.open(fileobj=fh, mode="r|")
    raise KseriesError(f"{deb}: {name} is compressed in a way kseries cannot read",
                       hint="unpack it with dpkg-deb, or fetch a Debian (xz) build")


def _ar_member(fh: io.BufferedReader, deb: Path, prefix: str) -> tuple[str, int]:
    """Move ``fh`` to the start of the first ar member named ``prefix*``: (name, size)."""
    if fh.read(8) != b"!<arch>\n":
        raise KseriesError(f"{deb}: not a Debian package (no ar header)")
    while True:
        header = fh.read(60)
        if len(header) < 60:
            raise KseriesError(f"{deb}: no {prefix}* member in the package")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith(prefix):
            return name, size
        fh.seek(size + (size & 1), os.SEEK_CUR)  # members are padded to an even size


class _Slice(io.RawIOBase):
    """The next ``size`` bytes of ``fh``, as a file of their own."""

    def __init__(self, fh: io.BufferedReader, size: int) -> None:
        self._fh, self._left = fh, size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview | bytearray) -> int:  # type: ignore[override]
        n = min(len(buf), self._left)
        data = self._fh.read(n)
        buf[:len(data)] = data
        self._left -= len(data)
        return len(data)
