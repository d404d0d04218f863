"""`kseries run` against a real lab machine: a QEMU VM running sshd, powered by a hook.

The VM (tests/lab_vm.py) is built from Debian's packages and driven by
kselftest/lab/qemu-power, called the way kselftest/lab-example.toml calls a
lab's own power control. Every test goes through the whole lifecycle: the hook
boots the built vm kernel, kseries waits for ssh, checks ``uname -r``/``-v``
against the bzImage, copies and runs the selftests, collects, cleans up.

Slow: on a clean machine the first test builds the vm kernels (see
conftest_harness); each VM boot under TCG takes a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest_harness import (
    KSELFTEST,
    PASS_PROGRAM,
    Sshd,
    VmArtifacts,
    artifacts_or_build,
    run_cli,
    sshd_fixture,  # noqa: F401  (the "sshd" fixture)
    static_program,
)
from kseries.build import bzimage
from lab_vm import HOOK, LabKeys, LabMachine, build_rootfs, lab_machine, make_keys

pytestmark = pytest.mark.slow

# Selftests that run in the TCG guest in a few seconds (the lab VM is an AMD guest).
LAB_TESTS = ("kvm_create_max_vcpus", "svm_vmcall_test", "kvm_buslock_test")
CONSOLE_PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    FILE *c = fopen("/dev/console", "w");
    if (c) { fputs("kseries-lab: the test is running\n", c); fclose(c); }
    sleep(600);
    return 0;
}
"""
HANG_ON_RELEASE = r"""
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
int main(void) {
    struct utsname u;
    uname(&u);
    if (strcmp(u.release, RELEASE) == 0)
        for (;;) pause();  /* hangs on the lab VM's kernel only */
    return 0;
}
"""


@pytest.fixture(scope="module")
def kernels() -> VmArtifacts:
    art = artifacts_or_build()
    missing = [n for n in LAB_TESTS if n not in art.selftests]
    if missing:
        pytest.skip(f"no build of {', '.join(missing)} (the series' build makes them)")
    return art


@pytest.fixture(scope="module")
def lab_rootfs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LabKeys]:
    d = tmp_path_factory.mktemp("lab-rootfs")
    keys = make_keys(d / "keys")
    return build_rootfs(d / "lab-vm.cpio", keys.dir), keys


@pytest.fixture
def machine(tmp_path: Path, lab_rootfs: tuple[Path, LabKeys],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[LabMachine]:
    rootfs, keys = lab_rootfs
    yield from lab_machine(tmp_path, rootfs, keys, monkeypatch)


def example_host() -> dict[str, Any]:
    data = tomllib.loads((KSELFTEST / "lab-example.toml").read_text())
    host: dict[str, Any] = next(h for h in data["host"] if h["name"] == "lab-epyc-9005")
    return host


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(str(value))


def inventory(path: Path, m: LabMachine, *, tests: tuple[str, ...] = LAB_TESTS,
              key: Path | None = None, boot_timeout: int = 60, test_timeout: int = 60,
              more: str = "") -> Path:
    """An inventory with the lab VM as kselftest/lab-example.toml's lab-epyc-9005 is written:
    the same install_hook arguments, only the hook's path is this checkout's qemu-power."""
    ex = example_host()
    hook = [str(HOOK), *ex["ssh"]["install_hook"][1:]]
    smoke = [t for t in tests if t != "kvm_buslock_test"]
    ssh = {"address": "127.0.0.1", "port": m.port, "user": "root",
           "key": str(key or m.keys.client), "connect_timeout": 3, "run_timeout": 300,
           "install_hook": hook, "boot_timeout": boot_timeout}
    lines = ["[tests]", f"smoke = {toml(smoke)}", 'feature = "kvm_buslock_test"',
             f"timeout = {test_timeout}", "", "[[host]]", f"name = {toml(m.name)}",
             'vendor = "amd"', 'transport = "ssh"',
             # The VM is a TCG EPYC guest: SVM and nested, no Bus Lock Threshold.
             'supports = ["svm", "nested"]', "[host.ssh]"]
    lines += [f"{k} = {toml(v)}" for k, v in ssh.items()]
    path.write_text("\n".join(lines) + "\n" + more)
    return path


def cli_tests(tests: dict[str, Path]) -> list[str]:
    return [a for name, path in tests.items() for a in ("--test", f"{name}={path}")]


def kernel_and_flags(art: VmArtifacts) -> tuple[Path, list[str]]:
    if art.patched_kernel is not None:
        return art.patched_kernel, []
    return art.kernel, ["--unpatched"]


def summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


def test_hook_shape_is_the_example_one() -> None:
    """lab-example.toml's hook is qemu-power's shape: boot HOST KERNEL."""
    hook = example_host()["ssh"]["install_hook"]
    assert hook[1:] == ["boot", "{host}", "{kernel}"]
    assert "qemu-power boot HOST KERNEL" in HOOK.read_text()


def test_lifecycle_install_boot_verify_run(machine: LabMachine, kernels: VmArtifacts,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    kernel, flags = kernel_and_flags(kernels)
    inv = inventory(tmp_path / "lab.toml", machine)
    tests = {n: kernels.selftests[n] for n in LAB_TESTS}
    out = tmp_path / "res"
    t0 = time.monotonic()
    code = run_cli(["run", "--hosts", str(inv), "--kernel", str(kernel), *cli_tests(tests),
                    *flags, "-o", str(out)])
    elapsed = time.monotonic() - t0
    text = capsys.readouterr().out
    assert code == 0, text
    host = summary(out)["hosts"][0]
    built = bzimage.read(kernel)
    assert built.release in host["kernel"] and "uname -r and -v match" in host["kernel"]
    got = {t["name"]: t["actual"] for t in host["tests"]}
    assert got["kvm_buslock_test"] == "SKIP"  # TCG has no Bus Lock Threshold
    assert got["kvm_create_max_vcpus"] == "PASS" and got["kvm_init"] == "PASS"
    # The guest's facts come from the booted VM, not from this machine.
    assert "lab-vm:" in machine.console.read_text()
    lifecycle = next(n for n in host["notes"] if n.startswith("lifecycle: "))
    assert all(f" {p} " in lifecycle for p in ("install", "boot", "run"))
    print(f"\nLAB-FIGURES {lifecycle}; whole kseries run {elapsed:.1f}s")
    # Cleaned up: no kseries.* directory is left in the VM's /tmp.
    left = machine_ls_tmp(machine)
    assert not [n for n in left if n.startswith("kseries.")], left


def machine_ls_tmp(m: LabMachine) -> list[str]:
    from kseries import proc

    r = proc.run(["ssh", "-p", str(m.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "LogLevel=ERROR", "-i", str(m.keys.client), "root@127.0.0.1",
                  "ls /tmp"], timeout=30)
    return r.stdout.split()


def test_host_killed_mid_run_is_host_lost(machine: LabMachine, kernels: VmArtifacts,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    kernel, flags = kernel_and_flags(kernels)
    tests = {"kvm_create_max_vcpus": kernels.selftests["kvm_create_max_vcpus"],
             "svm_vmcall_test": static_program(tmp_path, "svm_vmcall_test", CONSOLE_PROGRAM)}
    inv = inventory(tmp_path / "lab.toml", machine, tests=tuple(tests))

    def pull_the_plug() -> None:
        if machine.wait_console("kseries-lab: the test is running", 240):
            machine.kill()

    killer = threading.Thread(target=pull_the_plug, daemon=True)
    killer.start()
    code = run_cli(["run", "--hosts", str(inv), "--kernel", str(kernel), *cli_tests(tests),
                    *flags, "-o", str(tmp_path / "res")])
    killer.join(timeout=5)
    text = capsys.readouterr().out
    assert code == 3, text
    host = summary(tmp_path / "res")["hosts"][0]
    assert host["verdict"] == "infra"
    err = host["infra_error"]
    assert err.startswith("host lost during the run") and "lab-vm" in err
    # The last output seen: the first test's result, before the second one ran.
    assert "last output:" in err and "kvm_create_max_vcpus" in err.split("last output:")[1]
    assert "INFRA" in text
    print(f"\nLAB-FAULT killed mid-run: exit {code}: {err}")


def test_host_that_never_comes_back(machine: LabMachine, kernels: VmArtifacts, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The installed kernel finds no init and panics: ssh never answers again."""
    machine.configure(APPEND="rdinit=/nonexistent")
    kernel, flags = kernel_and_flags(kernels)
    tests = {"kvm_create_max_vcpus": kernels.selftests["kvm_create_max_vcpus"]}
    inv = inventory(tmp_path / "lab.toml", machine, tests=tuple(tests), boot_timeout=10)
    t0 = time.monotonic()
    code = run_cli(["run", "--hosts", str(inv), "--kernel", str(kernel), *cli_tests(tests),
                    *flags, "-o", str(tmp_path / "res")])
    elapsed = time.monotonic() - t0
    text = capsys.readouterr().out
    assert code == 3, text
    err = summary(tmp_path / "res")["hosts"][0]["infra_error"]
    assert "did not come back within 10s after the install hook" in err
    assert 10 <= elapsed < 40
    print(f"\nLAB-FAULT never back: exit {code} after {elapsed:.1f}s: {err}")


def test_refused_key_names_host_and_user(machine: LabMachine, kernels: VmArtifacts,
                                         tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    kernel, flags = kernel_and_flags(kernels)
    tests = {"kvm_create_max_vcpus": kernels.selftests["kvm_create_max_vcpus"]}
    inv = inventory(tmp_path / "lab.toml", machine, tests=tuple(tests),
                    key=machine.keys.other, boot_timeout=60)
    t0 = time.monotonic()
    code = run_cli(["run", "--hosts", str(inv), "--kernel", str(kernel), *cli_tests(tests),
                    *flags, "-o", str(tmp_path / "res")])
    elapsed = time.monotonic() - t0
    text = capsys.readouterr().out
    assert code == 3, text
    err = summary(tmp_path / "res")["hosts"][0]["infra_error"]
    assert err.startswith("lab-vm: root@127.0.0.1 port") and "for user root" in err
    assert str(machine.keys.other) in err and "Permission denied" in err
    assert elapsed < 50  # refused at once once the VM is up, not after the boot timeout
    print(f"\nLAB-FAULT key refused: exit {code} after {elapsed:.1f}s: {err}")


def test_back_on_another_kernel_is_an_infrastructure_failure(
        machine: LabMachine, kernels: VmArtifacts, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The netboot still serves the unpatched base's kernel: both versions are named."""
    if kernels.patched_kernel is None:
        pytest.skip("needs both vm builds (the series and the unpatched base)")
    machine.configure(BOOT_KERNEL=str(kernels.kernel))
    tests = {"kvm_create_max_vcpus": kernels.selftests["kvm_create_max_vcpus"]}
    inv = inventory(tmp_path / "lab.toml", machine, tests=tuple(tests))
    code = run_cli(["run", "--hosts", str(inv), "--kernel", str(kernels.patched_kernel),
                    *cli_tests(tests), "-o", str(tmp_path / "res")])
    text = capsys.readouterr().out
    assert code == 3, text
    err = summary(tmp_path / "res")["hosts"][0]["infra_error"]
    booted, wanted = bzimage.read(kernels.kernel), bzimage.read(kernels.patched_kernel)
    assert booted.version != wanted.version
    assert f"came back on kernel {booted.release} ({booted.version})" in err
    assert f"not the built {wanted.release} ({wanted.version})" in err
    print(f"\nLAB-FAULT other kernel: exit {code}: {err}")


def test_a_hanging_test_times_out_and_the_run_goes_on(
        machine: LabMachine, kernels: VmArtifacts, sshd: Sshd, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A test that hangs on the lab VM is killed at the test timeout; the next host runs."""
    kernel, flags = kernel_and_flags(kernels)
    release = bzimage.read(kernel).release
    hang = static_program(tmp_path, "svm_vmcall_test",
                          f'#define RELEASE "{release}"\n' + HANG_ON_RELEASE)
    tests = {"svm_vmcall_test": hang,
             "kvm_create_max_vcpus": static_program(tmp_path, "kvm_create_max_vcpus",
                                                    PASS_PROGRAM)}
    # The next host: this machine's loopback sshd, its own kernel, no hook.
    nxt = ("\n[[host]]\nname = \"lab-next\"\nvendor = \"amd\"\ntransport = \"ssh\"\n"
           "supports = []\n[host.ssh]\naddress = \"127.0.0.1\"\n"
           f"port = {sshd.port}\nuser = {toml(sshd.user)}\nkey = {toml(str(sshd.key))}\n")
    inv = inventory(tmp_path / "lab.toml", machine, tests=tuple(tests), test_timeout=5,
                    more=nxt)
    code = run_cli(["run", "--hosts", str(inv), "--kernel", str(kernel), *cli_tests(tests),
                    *flags, "-j", "1", "-o", str(tmp_path / "res")])
    text = capsys.readouterr().out
    assert code == 2, text  # a test result, not an infrastructure failure
    lab, nxt_host = summary(tmp_path / "res")["hosts"]
    assert lab["host"] == "lab-vm" and lab["verdict"] == "fail" and not lab["infra_error"]
    hung = next(t for t in lab["tests"] if t["name"] == "svm_vmcall_test")
    assert hung["actual"] == "ERROR" and "killed after 5s" in hung["reason"]
    after = next(t for t in lab["tests"] if t["name"] == "kvm_create_max_vcpus")
    assert after["actual"] == "PASS"  # the lab VM went on to its next test
    assert nxt_host["host"] == "lab-next" and nxt_host["verdict"] != "infra"
    assert {t["name"]: t["actual"] for t in nxt_host["tests"]}["svm_vmcall_test"] == "PASS"
    print(f"\nLAB-FAULT hanging test: exit {code}: lab-vm svm_vmcall_test {hung['actual']} "
          f"({hung['reason']}); then lab-next ran: {nxt_host['verdict']}")
