"""The qemu transport and the whole harness, with real QEMU boots of a real kernel.

The kernel and selftests come from KSERIES_TEST_BZIMAGE / KSERIES_TEST_SELFTESTS
or the test cache; the first (slow) test builds them there (see
conftest_harness). Each boot takes a few seconds under TCG.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest_harness import (
    FAIL_PROGRAM,
    HOW,
    KSELFTEST,
    PLAN,
    ROOT,
    SKIP_PROGRAM,
    SMOKE,
    build_artifacts,
    existing_artifacts,
    require_artifacts,
    run_cli,
    static_program,
)
from kseries.base import bases
from kseries.build import bzimage, kbuild, profiles
from kseries.errors import KseriesError
from kseries.progress import RecordingReporter
from kseries.run import harness, initramfs, inventory, ktap, qemu, results
from kseries.run.inventory import Host, QemuSettings
from kseries.run.ktap import Status
from kseries.run.outcome import evaluate
from kseries.run.results import Baseline, RunReport

AMD = Host("qemu-amd", "amd", "qemu", frozenset({"svm", "nested"}),
           qemu=QemuSettings(cpu="EPYC,+svm", timeout=120))
INTEL = Host("qemu-intel", "intel", "qemu", frozenset(),
             qemu=QemuSettings(cpu="Skylake-Client", timeout=120))
AMD_WITH_FEATURE = Host("amd-declared", "amd", "qemu",
                        frozenset({"svm", "nested", "bus_lock_threshold"}),
                        qemu=QemuSettings(cpu="EPYC,+svm", timeout=120))
TCG = qemu.Accel("tcg", "test")


def outcome(report: RunReport, host: str, test: str) -> tuple[Status, bool, str]:
    h = next(h for h in report.hosts if h.host.name == host)
    t = next(t for t in h.tests if t.name == test)
    return t.actual, t.ok, t.reason


@pytest.mark.slow
def test_build_vm_kernel_and_selftests() -> None:
    """tinyconfig + kselftest/vm.config builds, and the smoke selftests build -static."""
    art = existing_artifacts() or build_artifacts()
    assert art.kernel.stat().st_size > 500_000
    for path in art.selftests.values():
        assert initramfs.is_static_elf(path)


def test_amd_and_intel_under_tcg(tmp_path: Path) -> None:
    art = require_artifacts()
    tests = dict(art.selftests)
    real_feature_test = "kvm_buslock_test" in tests
    if not real_feature_test:  # a stand-in that skips as the real test does without the CPU bit
        tests["kvm_buslock_test"] = static_program(tmp_path, "kvm_buslock_test", SKIP_PROGRAM)
    rec = RecordingReporter()
    report = harness.run_hosts([AMD, INTEL], PLAN, kernel=art.kernel, tests=tests,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST, reporter=rec,
                               patched=False, accel="tcg")
    assert report.exit_code == 0, [r for h in report.hosts for r in h.tests if not r.ok]
    # AMD: kvm_amd initialised, /dev/kvm, the nested SVM smoke tests pass under TCG.
    assert outcome(report, "qemu-amd", "kvm_init")[0] is Status.PASS
    assert outcome(report, "qemu-amd", "dev_kvm")[0] is Status.PASS
    design = {n for n in art.selftests if n.startswith("kseries_design_")}
    for name in art.selftests:
        if name != "kvm_buslock_test" and name not in design:
            assert outcome(report, "qemu-amd", name)[0] is Status.PASS, name
    for name in design:  # kseries' design checks need the feature: they skip, saying so
        status, _, reason = outcome(report, "qemu-amd", name)
        assert status is Status.SKIP and "not supported" in reason, (name, reason)
    # The Bus Lock Threshold is not emulated by TCG: the expected result is a SKIP.
    status, ok, reason = outcome(report, "qemu-amd", "kvm_buslock_test")
    assert (status, ok) == (Status.SKIP, True)
    assert ("not supported" if real_feature_test else "Requirement not met") in reason
    # Intel: no VMX under TCG, kvm_intel does not load, every KVM test skips as expected.
    status, ok, reason = outcome(report, "qemu-intel", "kvm_init")
    assert (status, ok) == (Status.SKIP, True) and "VMX not supported" in reason
    for name in tests:
        status, ok, reason = outcome(report, "qemu-intel", name)
        assert (status, ok) == (Status.SKIP, True), name
        assert (name == "kvm_buslock_test" and not real_feature_test) or "/dev/kvm" in reason
    # No virt line is expected of an unpatched kernel.
    assert all(t.name != "cpuinfo_virt" for h in report.hosts for t in h.tests)
    # The files CI reads.
    res = tmp_path / "res"
    summary = json.loads((res / "summary.json").read_text())
    assert summary["exit_code"] == 0 and len(summary["hosts"]) == 2
    ktap.parse((res / "results.ktap").read_text(), strict=True)
    raw = ktap.parse((res / "qemu-amd" / "guest.ktap").read_text(), strict=True)
    assert [r.name for r in raw.results] == list(tests)
    junit = ET.parse(res / "junit.xml").getroot()
    assert junit.get("failures") == "0"
    smm = junit.find("testsuite[@name='qemu-amd']/testcase[@name='smm_test']")
    assert smm is not None and float(smm.get("time", "0")) > 0
    assert "kvm_amd" in (res / "qemu-amd" / "dmesg.txt").read_text()
    assert (res / "qemu-amd" / "console.log").is_file()
    assert any("qemu-amd: PASS" in e[2] for e in rec.events)


def test_declared_feature_turns_a_skip_into_a_failure(tmp_path: Path) -> None:
    """A host that declares the Bus Lock Threshold must PASS; a SKIP there fails (exit 2)."""
    art = require_artifacts()
    tests = {"svm_vmcall_test": art.selftests["svm_vmcall_test"],
             "kvm_buslock_test": static_program(tmp_path, "kvm_buslock_test", SKIP_PROGRAM)}
    report = harness.run_hosts([AMD_WITH_FEATURE], PLAN, kernel=art.kernel, tests=tests,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=True, accel="tcg")
    status, ok, _ = outcome(report, "amd-declared", "kvm_buslock_test")
    assert (status, ok) == (Status.SKIP, False)
    row = next(r for r in results.rows(report) if r.test == "kvm_buslock_test")
    assert "expected PASS" in row.reason and "declares" in row.reason
    assert report.exit_code == 2


def test_patched_kernel_must_show_the_virt_line(tmp_path: Path) -> None:
    """With patched=True the /proc/cpuinfo virt line is checked: the base kernel lacks it."""
    art = require_artifacts()
    one = {"kvm_create_max_vcpus": art.selftests["kvm_create_max_vcpus"]}
    report = harness.run_hosts([AMD], PLAN, kernel=art.kernel, tests=one,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=True, accel="tcg")
    status, ok, reason = outcome(report, "qemu-amd", "cpuinfo_virt")
    assert (status, ok) == (Status.FAIL, False)
    assert "no virt line" in reason
    assert report.exit_code == 2


def test_smoke_tests_are_compared_with_the_baseline(tmp_path: Path) -> None:
    art = require_artifacts()
    tests = {"smm_test": art.selftests["smm_test"],
             "svm_vmcall_test": static_program(tmp_path, "svm_vmcall_test", FAIL_PROGRAM)}
    # The baseline failed svm_vmcall_test too (as TCG fails some tests): that is expected;
    # it passed smm_test, which must pass again.
    baseline = Baseline("test", {"qemu-amd": {"svm_vmcall_test": (Status.FAIL, "TCG"),
                                              "smm_test": (Status.PASS, ""),
                                              "kernel_log": (Status.PASS, "")}})
    report = harness.run_hosts([AMD], PLAN, kernel=art.kernel, tests=tests,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=False, baseline=baseline,
                               accel="tcg")
    assert outcome(report, "qemu-amd", "svm_vmcall_test")[:2] == (Status.FAIL, True)
    assert outcome(report, "qemu-amd", "smm_test")[:2] == (Status.PASS, True)
    assert report.exit_code == 0
    # A baseline in which smm_test failed makes its PASS now a difference to look at.
    worse = Baseline("test", {"qemu-amd": {"smm_test": (Status.FAIL, "")}})
    again = harness.run_hosts([AMD], PLAN, kernel=art.kernel, tests={"smm_test": tests["smm_test"]},
                              out_dir=tmp_path / "res2", kselftest=KSELFTEST,
                              reporter=RecordingReporter(), patched=False, baseline=worse,
                              accel="tcg")
    assert outcome(again, "qemu-amd", "smm_test")[:2] == (Status.PASS, False)
    assert again.exit_code == 2


def _boot_with_init(tmp_path: Path, kernel: Path, script: str, timeout: float) -> RunReport:
    init = tmp_path / "init"
    init.write_text(script)
    guest = initramfs.GuestFiles.from_dir(KSELFTEST)
    rd = initramfs.build(tmp_path / "rd.cpio", {}, guest=guest, init=init)
    host = Host("qemu-amd", "amd", "qemu", frozenset({"svm"}),
                qemu=QemuSettings(cpu="EPYC,+svm", timeout=timeout))
    run = qemu.run(host, kernel, rd, TCG, tmp_path / "work")
    exp = inventory.check_expectations(host, patched=False)
    report = evaluate(host, run, [], {}, exp)
    return RunReport([report], tmp_path, kernel, False)


def test_a_panicking_guest_is_an_infrastructure_failure(tmp_path: Path) -> None:
    art = require_artifacts()
    report = _boot_with_init(tmp_path, art.kernel, "#!/bin/sh\n"
                             "/bin/busybox mount -t proc proc /proc\n"
                             "echo 'about to crash'\n"
                             "echo c > /proc/sysrq-trigger\n/bin/busybox sleep 1000\n",
                             timeout=60)
    h = report.hosts[0]
    assert h.verdict == "infra" and report.exit_code == 3
    assert "panicked" in h.infra_error
    assert h.duration < 60
    assert any("sysrq" in line.lower() or "Kernel panic" in line for line in h.console_tail)


def test_a_guest_on_another_kernel_is_an_infrastructure_failure(tmp_path: Path) -> None:
    """The boot header names one build, the payload boots another (what a stale
    piggy.o made): the guest's /proc/version gives it away."""
    art = require_artifacts()
    data = bytearray(art.kernel.read_bytes())
    named = bzimage.read(art.kernel)
    at = data.index(named.version.encode())
    data[at:at + len(named.version)] = named.version.replace("SMP", "SMQ").encode()
    other = tmp_path / "bzImage"
    other.write_bytes(bytes(data))
    smoke = {n: art.selftests[n] for n in SMOKE[:1]}
    report = harness.run_hosts([AMD], PLAN, kernel=other, tests=smoke, out_dir=tmp_path / "res",
                               kselftest=KSELFTEST, reporter=RecordingReporter(),
                               patched=False, accel="tcg")
    h = report.hosts[0]
    assert h.verdict == "infra" and report.exit_code == 3, h.infra_error
    assert f"the guest ran {named.release} {named.version}, not " in h.infra_error
    assert "SMQ" in h.infra_error and "another build's kernel" in h.infra_error
    # The same kernel with its own header: no such failure.
    assert qemu.booted_other(art.kernel, f"version=Linux version {named.release} "
                             f"(kseries@kseries) (gcc 12) {named.version}\n") == ""


def test_a_bzimage_must_hold_the_vmlinux_of_its_build(tmp_path: Path) -> None:
    """kbuild checks the image's payload against the compressed vmlinux beside it."""
    require_artifacts()
    base = bases.resolve("debian:6.12", ROOT / "templates", install=False)
    out = kbuild.build_dir_of(base, profiles.load_profile(ROOT / "templates", "vm"))
    assert kbuild.check_image(out)
    boot = tmp_path / "arch/x86/boot"
    (boot / "compressed").mkdir(parents=True)
    shutil.copyfile(out / "arch/x86/boot/bzImage", boot / "bzImage")
    payload = next(out.glob(kbuild.IMAGE_PAYLOAD))
    stale = bytearray(payload.read_bytes())
    stale[len(stale) // 2] ^= 0xFF
    (boot / "compressed" / payload.name).write_bytes(bytes(stale))
    assert not kbuild.check_image(tmp_path, fail=False)
    with pytest.raises(KseriesError, match=r"its payload is not vmlinux\.bin\.\w+ of this build"):
        kbuild.check_image(tmp_path)
    # The progress line says what is made, and how.
    assert kbuild.steps(("bzImage", "modules")) == ("make vmlinux modules, then bzImage "
                                                    "without ccache")
    assert kbuild.steps(("arch/x86/kvm/",)) == "make arch/x86/kvm/"


def test_a_hanging_guest_is_caught_by_its_timeout(tmp_path: Path) -> None:
    art = require_artifacts()
    report = _boot_with_init(tmp_path, art.kernel, "#!/bin/sh\n"
                             "echo 'init: going to sleep'\n/bin/busybox sleep 100000\n",
                             timeout=10)
    h = report.hosts[0]
    assert h.verdict == "infra" and report.exit_code == 3
    assert "hung" in h.infra_error
    assert 9 < h.duration < 25
    assert "init: going to sleep" in "\n".join(h.console_tail)


def test_kvm_probe_boots_the_kernel_or_says_why_not(tmp_path: Path) -> None:
    art = require_artifacts()
    guest = initramfs.GuestFiles.from_dir(KSELFTEST)
    ok, why = qemu.probe_kvm(art.kernel, guest, tmp_path, timeout=20)
    assert why
    accel = qemu.choose_accel("auto", art.kernel, guest, tmp_path / "again", probe_timeout=20)
    assert accel.name == ("kvm" if ok else "tcg")
    if not ok:
        assert "TCG" in accel.reason
    # A file that is not a kernel never passes the probe.
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"\0" * 4096)
    assert qemu.probe_kvm(bogus, guest, tmp_path / "bogus-probe", timeout=10)[0] is False


def test_kseries_run_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`kseries run` on the default inventory's two hosts: the table and exit 0."""
    art = require_artifacts()
    selftests = next(iter(art.selftests.values())).parent
    while not all(any(selftests.rglob(n)) for n in art.selftests):
        selftests = selftests.parent
    code = run_cli(["run", "--kernel", str(art.kernel), "--selftests", str(selftests),
                    "--unpatched", "--accel", "tcg", "-o", str(tmp_path / "res")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "qemu-amd" in out and "qemu-intel" in out
    assert "VMX not supported" in out
    assert "exit 0: every host did what was expected" in out
    assert (tmp_path / "res" / "junit.xml").is_file()
    # One host, patched: the virt line is missing from this kernel, so exit 2.
    code = run_cli(["run", "--kernel", str(art.kernel), "--selftests", str(selftests),
                    "--host", "qemu-amd", "--accel", "tcg", "-o", str(tmp_path / "res2")])
    out = capsys.readouterr().out
    assert code == 2 and "MISMATCH" in out and "no virt line" in out


def test_kseries_run_lava(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("yaml", reason="PyYAML is needed for --lava: pip install pyyaml")
    kernel = tmp_path / "bzImage"  # a boot setup header is all --lava reads of it
    header = bytearray(0x400)
    header[0x1FE:0x200], header[0x202:0x206], header[0x211] = b"\x55\xaa", b"HdrS", 1
    kernel.write_bytes(bytes(header))
    t = static_program(tmp_path, "smm_test", FAIL_PROGRAM)
    code = run_cli(["run", "--lava", "--kernel", str(kernel), "--test", f"smm_test={t}",
                    "-o", str(tmp_path / "res"), "--lava-url", "https://lab.example.org/k"])
    out = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "res" / "lava" / "qemu-amd.yaml").is_file()
    assert (tmp_path / "res" / "lava" / "initramfs.cpio").is_file()
    assert "lavacli jobs submit" in out


def test_kseries_run_needs_a_kernel_and_tests(tmp_path: Path) -> None:
    with pytest.raises(KseriesError, match="no selftest binaries"):
        run_cli(["run", "--kernel", "/nonexistent"])
    t = static_program(tmp_path, "smm_test", FAIL_PROGRAM)
    with pytest.raises(KseriesError, match="no kernel for the qemu hosts"):
        run_cli(["run", "--test", f"smm_test={t}"])


def test_kseries_run_with_a_baseline_kernel(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--baseline-kernel runs the unpatched base first; smoke tests are compared with it."""
    art = require_artifacts()
    smm = art.selftests["smm_test"]
    code = run_cli(["run", "--kernel", str(art.kernel), "--baseline-kernel", str(art.kernel),
                    "--test", f"smm_test={smm}", "--host", "qemu-amd", "--unpatched",
                    "--accel", "tcg", "-o", str(tmp_path / "res")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "as on the unpatched base" not in out  # ok rows show the actual reason
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["baseline"].startswith("run of ")
    smm_row = next(t for t in summary["hosts"][0]["tests"] if t["name"] == "smm_test")
    assert smm_row["expected"] == ["PASS"]
    assert smm_row["expected_reason"].startswith("as on the unpatched base: PASS")
    assert (tmp_path / "res" / "baseline" / "summary.json").is_file()
    # The saved baseline can be reused with --baseline.
    code = run_cli(["run", "--kernel", str(art.kernel), "--baseline", str(tmp_path / "res" /
                    "baseline"), "--test", f"smm_test={smm}", "--host", "qemu-amd",
                    "--unpatched", "--accel", "tcg", "-o", str(tmp_path / "res2")])
    assert code == 0


def test_a_hanging_selftest_is_killed_and_the_next_one_runs(tmp_path: Path) -> None:
    """The per-test timeout: the hung test is an ERROR, the guest goes on and powers off."""
    art = require_artifacts()
    hang = static_program(tmp_path, "svm_int_ctl_test",
                          "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n")
    plan = inventory.TestPlan(smoke=("svm_int_ctl_test", "kvm_create_max_vcpus"),
                              feature="kvm_buslock_test", test_timeout=3)
    tests = {"svm_int_ctl_test": hang,
             "kvm_create_max_vcpus": art.selftests["kvm_create_max_vcpus"]}
    report = harness.run_hosts([AMD], plan, kernel=art.kernel, tests=tests,
                               out_dir=tmp_path / "res", kselftest=KSELFTEST,
                               reporter=RecordingReporter(), patched=False, accel="tcg")
    h = report.hosts[0]
    assert not h.infra_error
    status, ok, reason = outcome(report, "qemu-amd", "svm_int_ctl_test")
    assert (status, ok) == (Status.ERROR, False) and "killed after 3s" in reason
    assert outcome(report, "qemu-amd", "kvm_create_max_vcpus")[:2] == (Status.PASS, True)
    assert report.exit_code == 2


def test_series_kernel_against_the_unpatched_baseline(tmp_path: Path) -> None:
    """Issue 4's TCG picture, end to end: the series' kernel, compared with the base's.

    QEMU emulates SVM but not the Bus Lock Threshold, so on the AMD host kvm_amd
    loads, the virt line is there (empty), the smoke tests match the baseline and
    kvm_buslock_test skips because the CPU lacks the feature; the Intel host has
    no VMX under TCG and skips.
    """
    art = require_artifacts()
    if art.patched_kernel is None or "kvm_buslock_test" not in art.selftests:
        pytest.skip(f"no build of the series: {HOW}")
    base_run = harness.run_hosts([AMD, INTEL], PLAN, kernel=art.kernel, tests=art.selftests,
                                 out_dir=tmp_path / "base", kselftest=KSELFTEST,
                                 reporter=RecordingReporter(), patched=False, accel="tcg")
    report = harness.run_hosts([AMD, INTEL], PLAN, kernel=art.patched_kernel,
                               tests=art.selftests, out_dir=tmp_path / "series",
                               kselftest=KSELFTEST, reporter=RecordingReporter(), patched=True,
                               baseline=Baseline.from_report(base_run), accel="tcg")
    assert outcome(report, "qemu-amd", "cpuinfo_virt")[:2] == (Status.PASS, True)
    status, ok, reason = outcome(report, "qemu-amd", "kvm_buslock_test")
    assert (status, ok) == (Status.SKIP, True)
    assert "Bus Lock Threshold" in reason or "BUS_LOCK" in reason
    for smoke in SMOKE:
        assert outcome(report, "qemu-amd", smoke)[1], smoke
    assert outcome(report, "qemu-intel", "kvm_buslock_test")[:2] == (Status.SKIP, True)
    assert report.exit_code == 0
