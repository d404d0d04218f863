"""A lab machine for the tests: a QEMU VM running OpenSSH's sshd, reached on a loopback port.

Its root file system is an initramfs made here from Debian's packages:
busybox-static, openssh-server's ``sshd`` (with ``sshd-session`` and
``sshd-auth`` where its version has them) and openssh-sftp-server's
``sftp-server`` with the shared libraries ``ldd`` names, the init script and
sshd_config in tests/data/lab-vm/, and keys made by ssh-keygen. Its power and
boot control is kselftest/lab/qemu-power, the same hook shape a lab uses for
its PDU or netboot: ``qemu-power boot HOST KERNEL`` restarts the VM with KERNEL.

Imported explicitly by tests/test_lab_vm.py.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest_harness import KSELFTEST, ROOT, free_port
from kseries import proc
from kseries.run.initramfs import CpioWriter, find_busybox

DATA = ROOT / "tests" / "data" / "lab-vm"
HOOK = KSELFTEST / "lab" / "qemu-power"
SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
# Since OpenSSH 9.8 sshd runs each connection in sshd-session, and since 10.0 its
# authentication in sshd-auth (Debian 13); without them a client waits for a banner
# that never comes. Bookworm's 9.2 has neither.
SSHD_HELPERS = (Path("/usr/lib/openssh/sshd-session"), Path("/usr/lib/openssh/sshd-auth"))
_LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)$")


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries (and the loader) ``ldd`` says ``binary`` needs."""
    out = proc.run(["ldd", str(binary)], what=f"ldd {binary}").stdout
    libs = []
    for line in out.splitlines():
        m = _LDD_PATH.search(line.strip())
        if m:
            libs.append(Path(m.group(1)))
    return libs


def build_rootfs(out: Path, keys: Path) -> Path:
    """The lab VM's initramfs: busybox, sshd and sftp-server with their libraries."""
    for need, package in ((SSHD, "openssh-server"), (SFTP_SERVER, "openssh-sftp-server")):
        if not need.is_file():
            pytest.skip(f"no {need}: apt-get install {package}")
    files: dict[str, tuple[bytes, int]] = {}
    for binary in (SSHD, SFTP_SERVER, *(h for h in SSHD_HELPERS if h.is_file())):
        files[str(binary)[1:]] = (binary.read_bytes(), 0o755)
        for lib in shared_libraries(binary):
            files[str(lib)[1:]] = (lib.resolve().read_bytes(), 0o755)
    files["etc/ssh/sshd_config"] = ((DATA / "sshd_config").read_bytes(), 0o644)
    files["etc/ssh/ssh_host_ed25519_key"] = ((keys / "host_key").read_bytes(), 0o600)
    files["root/.ssh/authorized_keys"] = ((keys / "client_key.pub").read_bytes(), 0o600)
    files["etc/passwd"] = (b"root:x:0:0:root:/root:/bin/sh\n"
                           b"sshd:x:100:65534::/run/sshd:/bin/false\n", 0o644)
    files["etc/group"] = (b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    dirs = {"bin", "dev", "proc", "sys", "tmp", "run", "run/sshd", "root"}
    for name in files:
        parts = Path(name).parts[:-1]
        dirs |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
    with out.open("wb") as fh:
        w = CpioWriter(fh)
        for d in sorted(dirs):
            w.directory(d, 0o700 if d == "root" else 0o755)
        w.char_device("dev/console", 5, 1)
        w.char_device("dev/null", 1, 3)
        w.file("bin/busybox", find_busybox().read_bytes(), 0o755)
        w.symlink("bin/sh", "busybox")
        w.file("init", (DATA / "init").read_bytes(), 0o755)
        for name, (data, mode) in sorted(files.items()):
            w.file(name, data, mode)
        w.trailer()
    return out


@dataclass(frozen=True)
class LabKeys:
    dir: Path
    client: Path  # the key root's authorized_keys holds
    other: Path  # a key the VM refuses


def make_keys(d: Path) -> LabKeys:
    d.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key", "other_key"):
        if not (d / name).exists():
            proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kseries-{name}",
                      "-f", str(d / name)])
    return LabKeys(d, d / "client_key", d / "other_key")


@dataclass(frozen=True)
class LabMachine:
    """One lab VM: its directory under $KSERIES_LAB_DIR, its forwarded port, its keys."""

    name: str
    lab_dir: Path
    port: int
    keys: LabKeys
    rootfs: Path

    @property
    def dir(self) -> Path:
        return self.lab_dir / self.name

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    def configure(self, **extra: str) -> None:
        """Write machine.conf for the hook; ``extra`` adds e.g. APPEND or BOOT_KERNEL."""
        self.dir.mkdir(parents=True, exist_ok=True)
        values = {"INITRD": str(self.rootfs), "PORT": str(self.port), **extra}
        (self.dir / "machine.conf").write_text(
            "".join(f"{k}='{v}'\n" for k, v in values.items()))

    def power(self, *args: str) -> proc.Result:
        return proc.run([str(HOOK), *args], env={"KSERIES_LAB_DIR": str(self.lab_dir)},
                        timeout=60, what="qemu-power")

    def pid(self) -> int | None:
        try:
            return int((self.dir / "qemu.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """Pull the plug: SIGKILL to QEMU, no shutdown."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, 9)

    def wait_console(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.console.is_file() and text in self.console.read_text(errors="replace"):
                return True
            time.sleep(0.2)
        return False


def lab_machine(tmp_path: Path, rootfs: Path, keys: LabKeys,
                monkeypatch: pytest.MonkeyPatch, name: str = "lab-vm") -> Iterator[LabMachine]:
    """A configured (powered off) lab machine; powered off again at the end."""
    lab_dir = tmp_path / "lab"
    monkeypatch.setenv("KSERIES_LAB_DIR", str(lab_dir))
    m = LabMachine(name, lab_dir, free_port(), keys, rootfs)
    m.configure()
    try:
        yield m
    finally:
        if m.pid() is not None:
            m.power("off", m.name)
