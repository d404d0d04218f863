"""The local transport: run-tests on this machine, where /dev/kvm can be opened."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from conftest_harness import KSELFTEST, PASS_PROGRAM, SKIP_PROGRAM, static_program
from kseries.errors import KseriesError
from kseries.progress import RecordingReporter
from kseries.run import harness, local, qemu
from kseries.run.initramfs import GuestFiles
from kseries.run.inventory import Host, TestPlan
from kseries.run.ktap import Status

HOST = Host("this-machine", "amd", "local", frozenset({"svm"}))
PLAN = TestPlan(smoke=("svm_vmcall_test",), feature="kvm_buslock_test", test_timeout=30)


def test_local_run_reports_this_machines_kernel(tmp_path: Path) -> None:
    ok, why = qemu.kvm_usable()
    tests = {"svm_vmcall_test": static_program(tmp_path, "svm_vmcall_test", PASS_PROGRAM),
             "kvm_buslock_test": static_program(tmp_path, "kvm_buslock_test", SKIP_PROGRAM)}
    guest = GuestFiles.from_dir(KSELFTEST)
    if not ok:
        with pytest.raises(KseriesError, match="cannot run locally"):
            local.run(HOST, tests, guest, tmp_path / "w", test_timeout=30)
        pytest.skip(f"the local transport needs /dev/kvm: {why}")
    run = local.run(HOST, tests, guest, tmp_path / "w", test_timeout=30)
    assert "KSERIES-DONE" in run.output
    assert platform.release() in run.kernel_note
    report = harness.run_hosts([HOST], PLAN, kernel=None, tests=tests, out_dir=tmp_path / "res",
                               kselftest=KSELFTEST, reporter=RecordingReporter(), patched=True)
    got = {t.name: t.actual for t in report.hosts[0].tests}
    assert got["svm_vmcall_test"] is Status.PASS
    assert got["kvm_buslock_test"] is Status.SKIP
    assert "cpuinfo_virt" not in got  # this machine's own kernel is not the built one
