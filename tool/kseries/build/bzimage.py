"""Which kernel a bzImage is: the version string in its x86 boot header, and
the compressed kernel it carries.

The setup header (Documentation/arch/x86/boot.rst) has the magic "HdrS" at
0x202 and, at 0x20E, the offset (minus 0x200) of a NUL-terminated string:
``UTS_RELEASE " (" LINUX_COMPILE_BY "@" LINUX_COMPILE_HOST ") " UTS_VERSION``.
A booted kernel reports the same two parts as ``uname -r`` and ``uname -v``,
so a host can be checked to run this very build, not just some kernel of the
same release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kseries.errors import KseriesError

MAGIC_AT, MAGIC = 0x202, b"HdrS"
VERSION_PTR_AT = 0x20E
SETUP_BASE = 0x200
# setup_sects at 0x1F1 (0 means 4); payload_offset and payload_length at 0x248 and
# 0x24C, the offset counted from the protected-mode code, (setup_sects + 1) * 512 in.
SETUP_SECTS_AT, PAYLOAD_AT = 0x1F1, 0x248


@dataclass(frozen=True)
class KernelVersion:
    release: str  # uname -r
    version: str  # uname -v: "#1 SMP PREEMPT_DYNAMIC Tue Dec  2 02:51:00 UTC 2025"

    def __str__(self) -> str:
        return f"{self.release} {self.version}"

    def matches(self, release: str, version: str) -> bool:
        return release.strip() == self.release and version.strip() == self.version


def read(path: Path) -> KernelVersion:
    """The release and build version of the bzImage at ``path``."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError as exc:
        raise KseriesError(f"{path}: cannot read the kernel ({exc.strerror})") from exc
    if head[MAGIC_AT:MAGIC_AT + 4] != MAGIC:
        raise KseriesError(f"{path}: not an x86 bzImage (no HdrS boot header)",
                           hint="pass the arch/x86/boot/bzImage of the build")
    start = int.from_bytes(head[VERSION_PTR_AT:VERSION_PTR_AT + 2], "little") + SETUP_BASE
    end = head.find(b"\0", start)
    text = head[start:end].decode(errors="replace") if start < len(head) and end > 0 else ""
    release, sep, rest = text.partition(" (")
    hash_at = rest.find(") #")
    if not release or not sep or hash_at < 0:
        raise KseriesError(f"{path}: no kernel version string in the boot header ({text!r})")
    return KernelVersion(release, rest[hash_at + 2:].strip())


def payload(data: bytes) -> bytes | None:
    """The compressed kernel a bzImage's bytes carry (what its build's piggy.o took
    in), or None when ``data`` has no x86 boot header."""
    if data[MAGIC_AT:MAGIC_AT + 4] != MAGIC:
        return None
    pm = ((data[SETUP_SECTS_AT] or 4) + 1) * 512
    offset = int.from_bytes(data[PAYLOAD_AT:PAYLOAD_AT + 4], "little")
    length = int.from_bytes(data[PAYLOAD_AT + 4:PAYLOAD_AT + 8], "little")
    return data[pm + offset:pm + offset + length]
