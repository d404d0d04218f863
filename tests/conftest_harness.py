"""Fixtures and helpers for the harness tests (`kseries run`).

Imported explicitly by tests/test_qemu.py and friends (tests/conftest.py
belongs to another part of the project).

The QEMU tests need a vm-profile bzImage and static KVM selftests. They come,
in this order, from:

1. ``KSERIES_TEST_BZIMAGE`` (a bzImage built with kselftest/vm.config) and
   ``KSERIES_TEST_SELFTESTS`` (a directory of static selftest binaries);
2. the well-known cache ``$KSERIES_CACHE/test-vm/`` (default
   ``~/.cache/kseries/test-vm/``), which the ``slow`` test fills;
3. a build by the ``slow`` test itself, from ``KSERIES_TEST_KSRC`` (a kernel
   source tree, used read-only) or else Debian's linux-source-6.12 tarball
   (extracted into the cache): tinyconfig + vm.config, ``make -j bzImage``
   (~3.5 min on 2 cores), plus the smoke selftests built with -static (~30 s).

Without any of them, a non-slow QEMU test skips and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kseries import proc
from kseries.inventory import TestPlan

ROOT = Path(__file__).resolve().parents[1]
KSELFTEST = ROOT / "kselftest"
SMOKE = ("svm_vmcall_test", "svm_int_ctl_test", "svm_nested_shutdown_test", "smm_test",
         "kvm_create_max_vcpus")
PLAN = TestPlan(smoke=SMOKE, feature="kvm_buslock_test", test_timeout=60)
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
HOW = ("set KSERIES_TEST_BZIMAGE (a bzImage built with kselftest/vm.config) and "
       "KSERIES_TEST_SELFTESTS (static KVM selftests), or run `pytest -m slow "
       "tests/test_qemu.py` once to build both into the cache")


def cache_dir() -> Path:
    root = os.environ.get("KSERIES_CACHE") or str(Path.home() / ".cache" / "kseries")
    return Path(root) / "test-vm"


@dataclass(frozen=True)
class VmArtifacts:
    kernel: Path
    selftests: dict[str, Path]


def _find_tests(d: Path) -> dict[str, Path]:
    """The smoke tests found in ``d``, and kvm_buslock_test if it was built there too."""
    found = {}
    for name in (*SMOKE, PLAN.feature):
        hits = sorted(p for p in d.rglob(name) if p.is_file() and os.access(p, os.X_OK))
        if hits:
            found[name] = hits[0]
    return found


def existing_artifacts() -> VmArtifacts | None:
    env_k, env_s = os.environ.get("KSERIES_TEST_BZIMAGE"), os.environ.get("KSERIES_TEST_SELFTESTS")
    if env_k and env_s and Path(env_k).is_file() and Path(env_s).is_dir():
        tests = _find_tests(Path(env_s))
        if tests:
            return VmArtifacts(Path(env_k), tests)
    c = cache_dir()
    if (c / "bzImage").is_file() and (c / "selftests").is_dir():
        tests = _find_tests(c / "selftests")
        if all(name in tests for name in SMOKE):
            return VmArtifacts(c / "bzImage", tests)
    return None


def require_artifacts() -> VmArtifacts:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing: apt-get install qemu-system-x86")
    art = existing_artifacts()
    if art is None:
        pytest.skip(f"no vm kernel and selftests: {HOW}")
    return art


def kernel_source() -> Path:
    """A kernel tree to build from; a Debian tarball is extracted into the cache."""
    env = os.environ.get("KSERIES_TEST_KSRC")
    if env:
        return Path(env)
    src = cache_dir() / "src"
    if (src / "Makefile").is_file():
        return src
    if not DEBIAN_TARBALL.is_file():
        pytest.skip(f"no kernel source: set KSERIES_TEST_KSRC or apt-get install "
                    f"linux-source-6.12 ({DEBIAN_TARBALL})")
    tmp = cache_dir() / "src.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(DEBIAN_TARBALL) as tar:
        tar.extractall(tmp, filter="fully_trusted")
    (top,) = list(tmp.iterdir())
    top.rename(src)
    shutil.rmtree(tmp)
    return src


def build_artifacts(jobs: int | None = None) -> VmArtifacts:
    """Build the vm kernel and the smoke selftests into the cache (slow)."""
    c = cache_dir()
    src = kernel_source()
    build, log = c / "build", c / "build.log"
    j = f"-j{jobs or os.cpu_count() or 1}"
    make = ["make", "-s", "-C", str(src), f"O={build}"]
    proc.run([*make, "tinyconfig"], log_to=log, what="make tinyconfig")
    proc.run([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build),
              str(build / ".config"), str(KSELFTEST / "vm.config")], log_to=log,
             what="merge vm.config")
    proc.run([*make, "olddefconfig"], log_to=log, what="make olddefconfig")
    proc.run([*make, j, "bzImage"], log_to=log, what="make bzImage", timeout=3600)
    shutil.copy2(build / "arch/x86/boot/bzImage", c / "bzImage")
    # Selftests: headers from this tree; the tools/ copy keeps a read-only tree clean.
    hdr = c / "headers"
    proc.run([*make, "headers_install", f"INSTALL_HDR_PATH={hdr}"], log_to=log,
             what="make headers_install")
    tools = c / "tools-src"
    if not (tools / "tools").is_dir():
        shutil.rmtree(tools, ignore_errors=True)
        (tools / "scripts").mkdir(parents=True)
        shutil.copytree(src / "tools", tools / "tools", symlinks=True)
        shutil.copy2(src / "scripts/subarch.include", tools / "scripts/")
    kvm = tools / "tools/testing/selftests/kvm"
    out = c / "selftests"
    names = list(SMOKE)
    if add_feature_test(kvm):
        names.append(PLAN.feature)
    targets = []
    for name in names:
        rel = next((f.relative_to(kvm).with_suffix("") for sub in ("x86_64", "x86", ".")
                    if (f := kvm / sub / f"{name}.c").is_file()), None)
        assert rel is not None, f"{name}.c not in {kvm}"
        targets.append(str(out / rel))
    proc.run(["make", "-s", "-C", str(kvm), f"OUTPUT={out}", "EXTRA_CFLAGS=-static",
              f"KHDR_INCLUDES=-I{hdr}/include", j, *targets], log_to=log,
             what="make kvm selftests")
    art = existing_artifacts()
    assert art is not None
    return art


def add_feature_test(kvm: Path) -> bool:
    """Put kselftest/kvm_buslock_test.c and its makefile line into our copy of tools/."""
    source = KSELFTEST / f"{PLAN.feature}.c"
    if not source.is_file():
        return False
    makefile = next(m for m in (kvm / "Makefile.kvm", kvm / "Makefile") if m.is_file())
    lines = makefile.read_text().splitlines(keepends=True)
    pattern = re.compile(r"^(TEST_GEN_PROGS_x86(?:_64)?) \+= (x86(?:_64)?)/")
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if m:
            shutil.copy2(source, kvm / m.group(2) / source.name)
            entry = f"{m.group(1)} += {m.group(2)}/{PLAN.feature}\n"
            if entry not in lines:
                lines.insert(i + 1, entry)
                makefile.write_text("".join(lines))
            return True
    return False


def static_program(tmp: Path, name: str, source: str) -> Path:
    """Compile a tiny static C program (a stand-in test binary with a known result)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is missing: apt-get install gcc")
    c = tmp / f"{name}.c"
    c.write_text(source)
    exe = tmp / name
    proc.run(["gcc", "-static", "-O1", "-o", str(exe), str(c)], what=f"gcc {name}")
    return exe


SKIP_PROGRAM = r"""
#include <stdio.h>
int main(void) {
    printf("1..0 # SKIP - Requirement not met: kvm_cpu_has(X86_FEATURE_BUS_LOCK_THRESHOLD)\n");
    return 4;
}
"""
PASS_PROGRAM = "int main(void) { return 0; }\n"
FAIL_PROGRAM = r"""
#include <stdio.h>
int main(void) {
    fprintf(stderr, "==== Test Assertion Failure ====\n  x86/t.c:1: exits == 1\n");
    return 254;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path  # the client key sshd accepts
    other_key: Path  # a client key it refuses
    user: str


@pytest.fixture(name="sshd")
def sshd_fixture(tmp_path: Path) -> Iterator[Sshd]:
    """A real OpenSSH server on 127.0.0.1:<free port>, accepting one generated key."""
    if not Path("/usr/sbin/sshd").is_file():
        pytest.skip("no /usr/sbin/sshd: apt-get install openssh-server")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host_key", "client_key", "other_key"):
        proc.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)])
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    user = os.environ.get("USER") or subprocess.run(
        ["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    sftp = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")
                 if Path(p).is_file()), "internal-sftp")
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
        f"Subsystem sftp {sftp}\n")
    log = (d / "sshd.log").open("w")
    server = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                              stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()}")
            time.sleep(0.1)
    try:
        yield Sshd(port, d / "client_key", d / "other_key", user)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
