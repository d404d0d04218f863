"""The ssh transport against a real sshd on loopback (started per test, generated keys)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from conftest_harness import (
    FAIL_PROGRAM,
    KSELFTEST,
    PASS_PROGRAM,
    SKIP_PROGRAM,
    Sshd,
    free_port,
    sshd_fixture,  # noqa: F401  (the "sshd" fixture)
    static_program,
)
from kseries.progress import RecordingReporter
from kseries.run import harness, ssh
from kseries.run.initramfs import GuestFiles
from kseries.run.inventory import Host, SshSettings, TestPlan
from kseries.run.ktap import Status

PLAN_FT = TestPlan(smoke=("svm_vmcall_test", "smm_test"), feature="kvm_buslock_test",
                   test_timeout=30)


def lab_host(sshd: Sshd, *, key: Path | None = None, port: int | None = None,
             address: str = "127.0.0.1", hook: tuple[str, ...] = (),
             supports: frozenset[str] = frozenset({"svm", "nested", "bus_lock_threshold"}),
             connect_timeout: float = 5) -> Host:
    return Host("lab-epyc", "amd", "ssh", supports,
                ssh=SshSettings(address=address, user=sshd.user, port=port or sshd.port,
                                key=key or sshd.key, connect_timeout=connect_timeout,
                                run_timeout=60, install_hook=hook, boot_timeout=20))


def binaries(tmp_path: Path) -> dict[str, Path]:
    return {"svm_vmcall_test": static_program(tmp_path, "svm_vmcall_test", PASS_PROGRAM),
            "smm_test": static_program(tmp_path, "smm_test", FAIL_PROGRAM),
            "kvm_buslock_test": static_program(tmp_path, "kvm_buslock_test", SKIP_PROGRAM)}


def test_copy_run_collect_and_clean_up(sshd: Sshd, tmp_path: Path) -> None:
    before = set(Path("/tmp").glob("kseries.*"))
    tests = binaries(tmp_path)
    run = ssh.run(lab_host(sshd), tests, GuestFiles.from_dir(KSELFTEST), tmp_path / "w",
                  kernel=None, test_timeout=30)
    assert not run.infra_error
    assert "KSERIES-DONE" in run.output
    assert "ok 1 svm_vmcall_test" in run.output
    assert "not ok 2 smm_test # exit code 254" in run.output
    assert "ok 3 kvm_buslock_test # SKIP" in run.output
    assert "host's own kernel" in run.kernel_note and os.uname().release in run.kernel_note
    assert set(Path("/tmp").glob("kseries.*")) == before  # the remote directory is gone


def test_harness_over_ssh_reports_per_test(sshd: Sshd, tmp_path: Path) -> None:
    """A host declaring the feature must PASS kvm_buslock_test: its SKIP is a failure."""
    report = harness.run_hosts([lab_host(sshd)], PLAN_FT, kernel=None, tests=binaries(tmp_path),
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=False)
    h = report.hosts[0]
    got = {t.name: (t.actual, t.ok) for t in h.tests}
    assert got["svm_vmcall_test"] == (Status.PASS, True)
    assert got["smm_test"] == (Status.FAIL, False)  # no baseline: a failure is a failure
    assert got["kvm_buslock_test"] == (Status.SKIP, False)
    assert h.verdict == "fail" and report.exit_code == 2
    assert (tmp_path / "res" / "lab-epyc" / "result.json").is_file()


def boot_header_image(path: Path, release: str, version: str) -> Path:
    """A file with just an x86 boot header naming ``release`` and ``version``: the
    loopback host cannot boot a kernel, so the "installed" kernel is the one it runs."""
    data = bytearray(0x2000)
    data[0x202:0x206] = b"HdrS"
    text = f"{release} (builder@host) {version}".encode() + b"\0"
    data[0x20E:0x210] = (0x1000 - 0x200).to_bytes(2, "little")
    data[0x1000:0x1000 + len(text)] = text
    path.write_bytes(bytes(data))
    return path


def test_install_hook_runs_and_waits_for_the_host(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    hook = tmp_path / "hook"
    hook.write_text(f"#!/bin/sh\necho \"$1 $2\" > {marker}\n")
    hook.chmod(0o755)
    uname = os.uname()
    kernel = boot_header_image(tmp_path / "bzImage", uname.release, uname.version)
    run = ssh.run(lab_host(sshd, hook=(str(hook), "{kernel}", "{user}@{address}")),
                  {"t": static_program(tmp_path, "t", PASS_PROGRAM)},
                  GuestFiles.from_dir(KSELFTEST), tmp_path / "w", kernel=kernel,
                  test_timeout=30)
    assert marker.read_text().split() == [str(kernel), f"{sshd.user}@127.0.0.1"]
    assert "installed by the hook" in run.kernel_note and uname.release in run.kernel_note
    assert any(n.startswith("lifecycle: install ") for n in run.notes)


def test_a_host_back_on_another_kernel_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)
    kernel = boot_header_image(tmp_path / "bzImage", "6.12.0-built", "#7 SMP built")
    report = harness.run_hosts([lab_host(sshd, hook=(str(hook),))], PLAN_FT, kernel=kernel,
                               tests=binaries(tmp_path), out_dir=tmp_path / "res",
                               kselftest=KSELFTEST, reporter=RecordingReporter(),
                               patched=False)
    err = report.hosts[0].infra_error
    assert report.exit_code == 3
    assert f"came back on kernel {os.uname().release} ({os.uname().version})" in err
    assert "not the built 6.12.0-built (#7 SMP built)" in err


def test_a_refused_key_is_an_infrastructure_failure(sshd: Sshd, tmp_path: Path) -> None:
    report = harness.run_hosts([lab_host(sshd, key=sshd.other_key)], PLAN_FT, kernel=None,
                               tests=binaries(tmp_path), out_dir=tmp_path / "res",
                               kselftest=KSELFTEST, reporter=RecordingReporter(),
                               patched=False)
    h = report.hosts[0]
    assert h.verdict == "infra" and report.exit_code == 3
    assert "Permission denied" in h.infra_error


def test_a_closed_port_is_an_infrastructure_failure(sshd: Sshd, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    report = harness.run_hosts([lab_host(sshd, port=port)], PLAN_FT, kernel=None,
                               tests=binaries(tmp_path), out_dir=tmp_path / "res",
                               kselftest=KSELFTEST, reporter=RecordingReporter(),
                               patched=False)
    h = report.hosts[0]
    assert h.verdict == "infra" and report.exit_code == 3
    assert "Connection refused" in h.infra_error and str(port) in h.infra_error


def test_an_unanswering_host_times_out(sshd: Sshd, tmp_path: Path) -> None:
    """A listener that never speaks SSH: the connect timeout, not a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        host = lab_host(sshd, port=port, connect_timeout=2)
        report = harness.run_hosts([host], PLAN_FT, kernel=None, tests=binaries(tmp_path),
                                   out_dir=tmp_path / "res", kselftest=KSELFTEST,
                                   reporter=RecordingReporter(), patched=False)
    h = report.hosts[0]
    assert h.verdict == "infra" and report.exit_code == 3
    assert "timed out" in h.infra_error.lower() or "timeout" in h.infra_error.lower()
    assert h.duration < 30


def test_ssh_options_put_the_inventory_first() -> None:
    s = SshSettings(address="h", options=("StrictHostKeyChecking=yes",), key=Path("/k"))
    opts = ssh.options(s, Path("/kh"))
    assert opts.index("StrictHostKeyChecking=yes") < opts.index("StrictHostKeyChecking=accept-new")
    assert opts[-2:] == ["-i", "/k"]


@pytest.mark.parametrize("hook", [("/bin/false",), ("{nope}",)])
def test_a_failing_install_hook_is_reported(sshd: Sshd, tmp_path: Path,
                                            hook: tuple[str, ...]) -> None:
    kernel = boot_header_image(tmp_path / "bzImage", "6.12.0", "#1")
    report = harness.run_hosts([lab_host(sshd, hook=hook)], PLAN_FT, kernel=kernel,
                               tests=binaries(tmp_path), out_dir=tmp_path / "res",
                               kselftest=KSELFTEST, reporter=RecordingReporter(), patched=False)
    assert report.hosts[0].verdict == "infra"
    assert "hook" in report.hosts[0].infra_error


def test_own_kernel_is_not_held_to_the_series(sshd: Sshd, tmp_path: Path) -> None:
    """Without an install hook the host's own kernel runs: no virt line is expected of it."""
    tests = {"svm_vmcall_test": static_program(tmp_path, "svm_vmcall_test", PASS_PROGRAM)}
    report = harness.run_hosts([lab_host(sshd)], PLAN_FT, kernel=None, tests=tests,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=True)
    h = report.hosts[0]
    assert "cpuinfo_virt" not in {t.name for t in h.tests}
    assert any("its own kernel" in n for n in h.notes)
    assert "host's own kernel" in h.kernel_note
