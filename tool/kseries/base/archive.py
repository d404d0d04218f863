"""Debian's archive, reached through a private apt configuration in the cache.

kseries fetches what it needs from Debian (a source package such as QEMU's, a
``linux-source`` tarball) without touching the machine's apt set-up: it writes
its own source list and keeps its own package lists under
``<cache>/apt/<name>/``, and runs ``apt-get`` with options that point there
(``Dir::Etc::SourceList``, ``Dir::State::Lists``, ``Dir::Cache``). The
machine's ``/etc/apt`` is read (for its mirror and trusted keys), never
written, and nothing is installed.

The mirror is the one the machine's apt uses for Debian, unless
``KSERIES_DEBIAN_MIRROR`` names another.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base.cache import cache_root, file_lock
from kseries.errors import KseriesError

DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "KSERIES_DEBIAN_MIRROR"
APT_SOURCES = Path("/etc/apt")
# A URI whose path ends in /debian serves Debian's main archive (not -security, not
# a third-party repository).
_DEBIAN_URI = re.compile(r"^(https?|file)://\S+/debian/?$")


@dataclass(frozen=True)
class Archive:
    """Some suites of Debian's archive, with binary and source packages."""

    name: str  # the private configuration's directory under <cache>/apt/
    suites: tuple[str, ...]  # e.g. ("trixie",)
    mirror: str

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

    def sources(self) -> str:
        lines = [f"{kind} {self.mirror} {suite} main"
                 for suite in self.suites for kind in ("deb", "deb-src")]
        return "\n".join(lines) + "\n"


def archive(name: str, suites: tuple[str, ...]) -> Archive:
    return Archive(name, suites, machine_mirror())


def machine_mirror(etc: Path = APT_SOURCES) -> str:
    """The Debian mirror of this machine's apt (``KSERIES_DEBIAN_MIRROR`` first)."""
    forced = os.environ.get(MIRROR_ENV, "").strip()
    if forced:
        return forced.rstrip("/")
    for uri in _apt_uris(etc):
        if _DEBIAN_URI.match(uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


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
                f"cannot reach Debian's archive at {a.mirror} for {', '.join(a.suites)} "
                f"({detail})",
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
    res = proc.run(["apt-cache", *a.options(), "showsrc", "--only-source", package],
                   check=False, what=f"apt-cache showsrc {package}")
    found = [ln.split(":", 1)[1].strip() for ln in res.stdout.splitlines()
             if ln.startswith("Version:")]
    newest_first: list[str] = []
    for v in found:
        if v not in newest_first:
            newest_first.append(v)
    newest_first.sort(key=_Version, reverse=True)
    return newest_first


class _Version:
    """Debian version order, by asking dpkg (the one authority on it)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __lt__(self, other: _Version) -> bool:
        res = proc.run(["dpkg", "--compare-versions", self.text, "lt", other.text],
                       check=False, what="dpkg --compare-versions")
        return res.ok
