"""The host inventory and the expected outcome per host."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest_harness import KSELFTEST
from kseries.errors import KseriesError
from kseries.run import inventory
from kseries.run.inventory import Kind
from kseries.run.ktap import Status


def test_default_inventory_has_an_amd_and_an_intel_qemu_host() -> None:
    inv = inventory.load(KSELFTEST / "hosts.toml")
    amd, intel = inv.select(["qemu-amd", "qemu-intel"])
    assert (amd.vendor, amd.transport, amd.qemu and amd.qemu.cpu) == ("amd", "qemu", "EPYC,+svm")
    assert amd.has_kvm and not amd.has_feature
    assert intel.vendor == "intel" and not intel.has_kvm
    assert inv.plan.feature == "kvm_buslock_test"
    assert "svm_nested_shutdown_test" in inv.plan.smoke
    assert inv.plan.kind("smm_test") is Kind.SMOKE
    assert inv.plan.kind("kvm_buslock_test") is Kind.FEATURE


def test_lab_example_parses_and_declares_the_feature() -> None:
    inv = inventory.load(KSELFTEST / "lab-example.toml")
    epyc = inv.select(["lab-epyc-9005"])[0]
    assert epyc.transport == "ssh" and epyc.ssh is not None
    assert epyc.has_feature and epyc.ssh.install_hook
    assert epyc.ssh.key == Path("~/.ssh/kseries_lab").expanduser()
    milan = inv.select(["lab-epyc-7003"])[0]
    assert not milan.has_feature and not milan.ssh.install_hook  # type: ignore[union-attr]
    spr = inv.select(["lab-xeon-spr"])[0]
    assert spr.has_feature  # Intel: bus_lock_detect with VMX


def _expect(host: inventory.Host, test: str) -> inventory.Expectation:
    plan = inventory.TestPlan(smoke=("smm_test",), feature="kvm_buslock_test")
    return inventory.test_expectation(host, plan, test)


def test_expected_outcomes_follow_declared_capabilities() -> None:
    inv = inventory.load(KSELFTEST / "lab-example.toml")
    epyc, milan, spr = inv.select(["lab-epyc-9005", "lab-epyc-7003", "lab-xeon-spr"])
    assert _expect(epyc, "kvm_buslock_test").statuses == {Status.PASS}
    e = _expect(milan, "kvm_buslock_test")
    assert e.statuses == {Status.SKIP} and "lacks the Bus Lock Threshold" in e.reason
    assert _expect(spr, "kvm_buslock_test").statuses == {Status.PASS}
    intel = inventory.load(KSELFTEST / "hosts.toml").select(["qemu-intel"])[0]
    e = _expect(intel, "kvm_buslock_test")
    assert e.statuses == {Status.SKIP} and "VMX" in e.reason
    assert _expect(intel, "smm_test").statuses == {Status.SKIP}
    # Without a baseline a smoke test may pass or skip, not fail.
    assert _expect(milan, "smm_test").statuses == {Status.PASS, Status.SKIP}


def test_check_expectations_virt_line_only_when_patched() -> None:
    amd = inventory.load(KSELFTEST / "hosts.toml").select(["qemu-amd"])[0]
    assert "cpuinfo_virt" not in inventory.check_expectations(amd, patched=False)
    exp = inventory.check_expectations(amd, patched=True)
    assert exp["cpuinfo_virt"].statuses == {Status.PASS}
    assert exp["kvm_init"].statuses == {Status.PASS}
    intel = inventory.load(KSELFTEST / "hosts.toml").select(["qemu-intel"])[0]
    assert inventory.check_expectations(intel, patched=True)["dev_kvm"].statuses == {Status.SKIP}


BASE = """
[tests]
smoke = ["a"]
[[host]]
name = "h"
vendor = "amd"
transport = "qemu"
supports = ["svm"]
[host.qemu]
cpu = "EPYC,+svm"
"""


@pytest.mark.parametrize("change, message", [
    (('vendor = "amd"', 'vendor = "arm"'), "vendor 'arm'"),
    (('transport = "qemu"', 'transport = "serial"'), "transport 'serial'"),
    (('supports = ["svm"]', 'supports = ["svm", "warp"]'), "unknown capability warp"),
    (('cpu = "EPYC,+svm"', 'memory = 1'), "needs cpu"),
    (('smoke = ["a"]', 'smoke = "a"'), "tests.smoke must be a list"),
    (('name = "h"', 'name = ""'), "no usable name"),
    (('cpu = "EPYC,+svm"', 'cpu = "EPYC"\naccel = "hvf"'), "accel 'hvf'"),
])
def test_bad_inventories_say_what_is_wrong(tmp_path: Path, change: tuple[str, str],
                                           message: str) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(BASE.replace(*change))
    with pytest.raises(KseriesError, match=message):
        inventory.load(path)


def test_duplicate_hosts_unknown_hosts_and_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(BASE + BASE.split("[tests]\nsmoke = [\"a\"]")[1])
    with pytest.raises(KseriesError, match="listed twice"):
        inventory.load(path)
    path.write_text(BASE)
    with pytest.raises(KseriesError, match="no host named nope"):
        inventory.load(path).select(["nope"])
    path.write_text("[[host]\n")
    with pytest.raises(KseriesError, match="not valid TOML"):
        inventory.load(path)
    with pytest.raises(KseriesError, match="cannot read"):
        inventory.load(tmp_path / "missing.toml")


def test_ssh_host_settings(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[[host]]\nname = "x"\nvendor = "intel"\ntransport = "ssh"\n'
                    'supports = ["vmx"]\n[host.ssh]\naddress = "10.0.0.5"\nport = 2222\n'
                    'run_timeout = 30\ninstall_hook = ["kexec-it", "{kernel}"]\n')
    (h,) = inventory.load(path).hosts
    assert h.ssh is not None
    assert (h.ssh.address, h.ssh.port, h.ssh.user, h.ssh.run_timeout) == ("10.0.0.5", 2222,
                                                                          "root", 30.0)
    assert h.ssh.install_hook == ("kexec-it", "{kernel}")
    assert h.describe() == "x (intel, ssh root@10.0.0.5)"
