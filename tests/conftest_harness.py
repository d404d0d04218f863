"""Fixtures and helpers for the harness tests (`kseries run`).

Imported explicitly by tests/test_qemu.py and friends.

The QEMU tests need a vm-profile bzImage and static KVM selftests. They come,
in this order, from:

1. ``KSERIES_TEST_BZIMAGE`` (a bzImage built with the vm profile) and
   ``KSERIES_TEST_SELFTESTS`` (a directory of static selftest binaries);
2. what ``kseries build --base debian:6.12 --profile vm [--unpatched]`` left
   in the cache (the build records its artifacts);
3. that build, run by the ``slow`` test itself: the unpatched base and the
   series, tinyconfig + vm.config (~3.5 min each cold on 2 cores), with the
   smoke selftests and kvm_buslock_test built -static.

Without any of them, a non-slow QEMU test skips and says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import debian
from kseries import proc
from kseries.base import bases
from kseries.build import artifacts, profiles
from kseries.cli import run as run_cmd
from kseries.errors import KseriesError
from kseries.run import inventory
from kseries.run.inventory import TestPlan

ROOT = Path(__file__).resolve().parents[1]
KSELFTEST = ROOT / "kselftest"
SMOKE = ("svm_vmcall_test", "svm_int_ctl_test", "svm_nested_shutdown_test", "smm_test",
         "kvm_create_max_vcpus")
PLAN = TestPlan(smoke=SMOKE, feature="kvm_buslock_test", test_timeout=60)
HOW = ("run `kseries build --base debian:6.12 --profile vm` and the same with --unpatched, "
       "or `pytest -m slow tests/test_qemu.py` once, or set KSERIES_TEST_BZIMAGE and "
       "KSERIES_TEST_SELFTESTS")


@dataclass(frozen=True)
class VmArtifacts:
    kernel: Path  # the unpatched base's kernel
    selftests: dict[str, Path]  # from the series' build: the smoke tests and kvm_buslock_test
    patched_kernel: Path | None = None  # the kernel with the series


def run_cli(argv: list[str]) -> int:
    """`kseries run ARGV` in this process, through its own parser (no error boundary)."""
    parser = argparse.ArgumentParser(prog="kseries")
    run_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def _find_tests(d: Path) -> dict[str, Path]:
    """The smoke tests found in ``d``, and kvm_buslock_test if it was built there too."""
    found = {}
    for name in (*SMOKE, PLAN.feature):
        hits = sorted(p for p in d.rglob(name) if p.is_file() and os.access(p, os.X_OK))
        if hits:
            found[name] = hits[0]
    return found


def _base() -> bases.Base:
    return bases.resolve("debian:6.12", ROOT / "templates", install=False)


def existing_artifacts() -> VmArtifacts | None:
    env_k, env_s = os.environ.get("KSERIES_TEST_BZIMAGE"), os.environ.get("KSERIES_TEST_SELFTESTS")
    if env_k and env_s and Path(env_k).is_file() and Path(env_s).is_dir():
        tests = _find_tests(Path(env_s))
        if tests:
            return VmArtifacts(Path(env_k), tests)
    try:
        base = _base()
        unpatched = artifacts.load(base, "vm", "v2", patched=False)
        patched = artifacts.load(base, "vm", "v2", patched=True)
    except KseriesError:
        return None
    if unpatched.kernel is None or not unpatched.kernel.is_file():
        return None
    if not (configured_as_now(unpatched) and configured_as_now(patched)):
        return None  # built before the profile changed (e.g. kselftest/vm.config): rebuild
    if not all(p.is_file() for p in patched.selftests.values()):
        return None
    return VmArtifacts(unpatched.kernel, dict(patched.selftests), patched.kernel)


def configured_as_now(built: artifacts.Artifacts) -> bool:
    """Whether ``built`` was configured from its profile as the checkout has it now."""
    try:
        stamp = (built.build_dir / ".kseries-config").read_text().split()
        profile = profiles.load_profile(ROOT / "templates", built.profile)
    except (OSError, KseriesError):
        return False
    return bool(stamp) and stamp[-1] == profile.stamp()


def artifacts_or_build() -> VmArtifacts:
    """The vm kernels and selftests: from the cache, else built once (the slow way)."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing: apt-get install qemu-system-x86")
    return existing_artifacts() or build_artifacts()


def require_artifacts() -> VmArtifacts:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is missing: apt-get install qemu-system-x86")
    art = existing_artifacts()
    if art is None:
        pytest.skip(f"no vm kernel and selftests: {HOW}")
    return art


def build_artifacts() -> VmArtifacts:
    """Build both vm kernels and the selftests with kseries' own build stage (slow)."""
    try:  # fetched and imported here when no test did it before (a test run alone)
        base = debian("6.12")
    except KseriesError as exc:
        pytest.skip(f"{exc} (the base debian:6.12 is fetched from the Debian archive)")
    templates = ROOT / "templates"
    smoke = inventory.load(KSELFTEST / "hosts.toml").plan.smoke
    v2 = templates / "series" / "v2"
    artifacts.build(base, templates, v2, KSELFTEST, "vm", smoke=smoke, patched=False)
    artifacts.build(base, templates, v2, KSELFTEST, "vm", smoke=smoke, patched=True)
    art = existing_artifacts()
    assert art is not None
    return art


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
