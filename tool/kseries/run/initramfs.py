"""The guest's initramfs: busybox-static, the init script and the static selftests.

Written directly as a "newc" cpio archive (the format the kernel unpacks), so
device nodes such as /dev/console need no root and no mknod, and the archive
is byte-for-byte the same for the same inputs (fixed mtimes and owners).
"""

from __future__ import annotations

import hashlib
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kseries.errors import KseriesError

BUSYBOX_PATHS = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
BUSYBOX_HINT = "install Debian's busybox-static (apt-get install busybox-static)"
GUEST_DIR = "kseries"  # /kseries in the guest: run-tests, settings, bin/


@dataclass(frozen=True)
class GuestFiles:
    """The guest-side scripts shipped in kselftest/guest/."""

    init: Path
    run_tests: Path
    probe_init: Path  # the accelerator probe's init: print a marker, reset
    lava_tests: Path  # under a LAVA test shell: run-tests, then one lava-test-case per test

    @classmethod
    def from_dir(cls, kselftest: Path) -> GuestFiles:
        g = kselftest / "guest"
        files = cls(g / "init", g / "run-tests", g / "probe-init", g / "lava-tests")
        for path in (files.init, files.run_tests, files.probe_init, files.lava_tests):
            if not path.is_file():
                raise KseriesError(f"{path}: guest file missing", hint="restore kselftest/guest/")
        return files


def find_busybox(explicit: Path | None = None) -> Path:
    """The static busybox to put in the guest; it must not need a dynamic loader."""
    candidates = (explicit,) if explicit else BUSYBOX_PATHS
    for path in candidates:
        if path and path.is_file():
            if not is_static_elf(path):
                raise KseriesError(f"{path} is dynamically linked", hint=BUSYBOX_HINT)
            return path
    raise KseriesError("no static busybox found", hint=BUSYBOX_HINT)


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable with no PT_INTERP (no dynamic loader)."""
    data = path.read_bytes()[:4096]
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            break
        if int.from_bytes(data[off : off + 4], "little") == 3:  # PT_INTERP
            return False
    return True


def settings_text(tests: list[str], test_timeout: int, *,
                  timeouts: Mapping[str, int] | None = None,
                  env: Mapping[str, str] | None = None) -> str:
    """/kseries/settings, sourced by the init script.

    ``timeouts`` gives some tests a limit of their own (run-tests reads
    ``TIMEOUT_<test>``); ``env`` is exported to every test (e.g. the round of a
    repeated run).
    """
    lines = [f"TESTS={shlex.quote(' '.join(tests))}", f"TEST_TIMEOUT={int(test_timeout)}"]
    for name, seconds in (timeouts or {}).items():
        if name in tests and name.isidentifier():
            lines.append(f"export TIMEOUT_{name}={int(seconds)}")
    for key, value in (env or {}).items():
        if not key.isidentifier():
            raise KseriesError(f"bad guest environment name {key!r}")
        lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def build(
    out: Path,
    tests: Mapping[str, Path],
    *,
    guest: GuestFiles,
    busybox: Path | None = None,
    test_timeout: int = 120,
    init: Path | None = None,
    timeouts: Mapping[str, int] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Write the initramfs to ``out`` and return it.

    ``tests`` maps a test name to its static binary; the guest runs them in this
    order. ``init`` replaces the init script (tests use it to make a guest that
    panics or hangs). ``timeouts`` and ``env`` go into the settings
    (``settings_text``).
    """
    bb = find_busybox(busybox)
    for name, path in tests.items():
        if "/" in name or not name:
            raise KseriesError(f"bad test name {name!r}", hint="use the binary's base name")
        if not path.is_file():
            raise KseriesError(f"{path}: test binary {name} not found",
                               hint="build the selftests first (kseries build)")
        if not is_static_elf(path):
            raise KseriesError(f"{path}: not a static x86-64 binary",
                               hint="build the selftests with EXTRA_CFLAGS=-static")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as fh:
        w = CpioWriter(fh)
        for d in ("bin", "dev", "proc", "sys", "tmp", GUEST_DIR, f"{GUEST_DIR}/bin"):
            w.directory(d)
        w.char_device("dev/console", 5, 1)
        w.char_device("dev/null", 1, 3)
        w.file("bin/busybox", bb.read_bytes(), 0o755)
        w.symlink("bin/sh", "busybox")
        w.file("init", (init or guest.init).read_bytes(), 0o755)
        w.file(f"{GUEST_DIR}/run-tests", guest.run_tests.read_bytes(), 0o755)
        w.file(f"{GUEST_DIR}/lava-tests", guest.lava_tests.read_bytes(), 0o755)
        settings = settings_text(list(tests), test_timeout, timeouts=timeouts,
                                 env=env).encode()
        w.file(f"{GUEST_DIR}/settings", settings, 0o644)
        for name, path in tests.items():
            w.file(f"{GUEST_DIR}/bin/{name}", path.read_bytes(), 0o755)
        w.trailer()
    tmp.replace(out)
    return out


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CpioWriter:
    """A minimal writer of the SVR4 "newc" cpio format (070701), no CRC."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.ino = 1
        self.offset = 0

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(name) + 1, 0)
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._write(header + name.encode() + b"\0")
        self._pad()
        self._write(data)
        self._pad()
        self.ino += 1

    def _write(self, data: bytes) -> None:
        self.fh.write(data)
        self.offset += len(data)

    def _pad(self) -> None:
        self._write(b"\0" * (-self.offset % 4))

    def directory(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def trailer(self) -> None:
        self.ino = 0
        self._entry("TRAILER!!!", 0)
