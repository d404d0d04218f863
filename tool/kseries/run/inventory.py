"""The host inventory: a TOML file naming the hosts to run on, how to reach them
and what their CPUs support, and from that what each host is expected to do.

The default inventory is kselftest/hosts.toml. Expectations come from the
declared capabilities, never from the host's name: a host that declares
``bus_lock_threshold`` must PASS kvm_buslock_test; one that does not must SKIP.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run.ktap import Status

VENDORS = ("amd", "intel")
TRANSPORTS = ("qemu", "ssh", "local")
CAPABILITIES = ("svm", "vmx", "nested", "bus_lock_threshold", "bus_lock_detect")
ACCELS = ("auto", "kvm", "tcg")
# What a qemu host runs on: the machine's QEMU, or kseries' own build with the
# Bus Lock Threshold model (build/emulator.py).
EMULATORS = ("", "bus-lock-threshold")
VIRT_EXTENSION = {"amd": "svm", "intel": "vmx"}
VENDOR_MODULE = {"amd": "kvm_amd", "intel": "kvm_intel"}
FEATURE_FLAG = {"amd": "bus_lock_threshold", "intel": "bus_lock_detect"}
FEATURE_NAME = {
    "amd": "the Bus Lock Threshold (CPUID Fn8000_000A EDX[29])",
    "intel": "bus lock detection (CPUID.(EAX=7,ECX=0):ECX[24])",
}


class Kind(StrEnum):
    CHECK = "check"  # a fact about the booted kernel (kvm_amd initialised, /dev/kvm, ...)
    SMOKE = "smoke"  # a stock KVM selftest, compared with the unpatched base's run
    FEATURE = "feature"  # the series' own selftest, expected from the declared capabilities
    DESIGN = "design"  # a kseries design check: what the series' design does, on the feature


# The checks every host gets, in the order they are reported.
CHECK_KVM_INIT = "kvm_init"
CHECK_DEV_KVM = "dev_kvm"
CHECK_VIRT_LINE = "cpuinfo_virt"
CHECK_KERNEL_LOG = "kernel_log"
CHECK_MODEL = "emulator_counts"  # the emulated host's model against the tests (model.py)


@dataclass(frozen=True)
class Expectation:
    statuses: frozenset[Status]
    reason: str

    def matches(self, status: Status) -> bool:
        return status in self.statuses

    @property
    def label(self) -> str:
        return "|".join(sorted(s.value for s in self.statuses))


def expect(*statuses: Status, reason: str = "") -> Expectation:
    return Expectation(frozenset(statuses), reason)


@dataclass(frozen=True)
class QemuSettings:
    cpu: str
    memory_mb: int = 512
    smp: int = 1
    accel: str = "auto"  # auto: KVM where /dev/kvm really works, else single-threaded TCG
    timeout: float = 180.0  # boot to power-off, seconds
    extra_args: tuple[str, ...] = ()
    emulator: str = ""  # "": the machine's QEMU; "bus-lock-threshold": kseries' model


@dataclass(frozen=True)
class SshSettings:
    address: str
    user: str = "root"
    port: int = 22
    key: Path | None = None
    connect_timeout: float = 10.0
    run_timeout: float = 600.0
    remote_dir: str = "/tmp"  # a fresh kseries.XXXXXX directory is made (and removed) under it
    install_hook: tuple[str, ...] = ()  # local command; {kernel} {address} {user} {port} {host}
    boot_timeout: float = 300.0  # after the hook, how long the host may take to come back
    options: tuple[str, ...] = ()  # extra `ssh -o` options, e.g. "StrictHostKeyChecking=yes"


@dataclass(frozen=True)
class Host:
    name: str
    vendor: str
    transport: str
    supports: frozenset[str]
    qemu: QemuSettings | None = None
    ssh: SshSettings | None = None
    lava: dict[str, Any] = field(default_factory=dict)  # device_type, deploy/boot methods

    @property
    def has_kvm(self) -> bool:
        """The host's CPU has the vendor's virtualization extension (SVM / VMX)."""
        return VIRT_EXTENSION[self.vendor] in self.supports

    @property
    def has_feature(self) -> bool:
        return self.has_kvm and FEATURE_FLAG[self.vendor] in self.supports

    @property
    def module(self) -> str:
        return VENDOR_MODULE[self.vendor]

    @property
    def emulated_feature(self) -> bool:
        """The feature comes from kseries' CPU model, not from silicon."""
        return self.qemu is not None and self.qemu.emulator == "bus-lock-threshold"

    def describe(self) -> str:
        where = {
            "qemu": f"qemu -cpu {self.qemu.cpu}" if self.qemu else "qemu",
            "ssh": f"ssh {self.ssh.user}@{self.ssh.address}" if self.ssh else "ssh",
            "local": "this machine",
        }[self.transport]
        return f"{self.name} ({self.vendor}, {where})"


@dataclass(frozen=True)
class TestPlan:
    """Which selftests to run: stock smoke tests plus the series' own test."""

    __test__ = False  # not a pytest test class, despite the name

    smoke: tuple[str, ...]
    feature: str
    test_timeout: int = 120
    design: tuple[str, ...] = ()  # kseries' design checks (kselftest/design/)

    def names(self) -> list[str]:
        return [*self.smoke, self.feature, *self.design]

    def kind(self, test: str) -> Kind:
        if test == self.feature:
            return Kind.FEATURE
        return Kind.DESIGN if test in self.design else Kind.SMOKE


@dataclass(frozen=True)
class SeriesTraits:
    """What the run expects of the series itself, from its data.

    ``virt_line``: the series adds /proc/cpuinfo's virt line (v2 does; the
    merged design gives the bit no name). ``design``: the expected result of
    each design check on a host with the feature (a known design difference
    of a series is an expected FAIL, with its reason).
    """

    virt_line: bool = True
    design: dict[str, Expectation] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]
    plan: TestPlan

    def select(self, names: list[str]) -> tuple[Host, ...]:
        """The hosts named (all if none), in the order asked."""
        if not names:
            return self.hosts
        by_name = {h.name: h for h in self.hosts}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise KseriesError(f"{self.path}: no host named {', '.join(unknown)}",
                               hint=f"hosts: {', '.join(by_name)}")
        return tuple(by_name[n] for n in names)


def read_toml(path: Path, what: str = "the inventory") -> dict[str, Any]:
    """A TOML file of the run stage's data, or one line saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise KseriesError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KseriesError(f"{path}: not valid TOML ({exc})") from exc


def load(path: Path) -> Inventory:
    return parse(read_toml(path), path)


def parse(data: dict[str, Any], path: Path) -> Inventory:
    tests = data.get("tests", {})
    plan = TestPlan(
        smoke=tuple(_str_list(tests.get("smoke", []), path, "tests.smoke")),
        feature=str(tests.get("feature", "kvm_buslock_test")),
        test_timeout=int(tests.get("timeout", 120)),
        design=tuple(_str_list(tests.get("design", []), path, "tests.design")),
    )
    hosts = tuple(_host(h, path) for h in data.get("host", []))
    if not hosts:
        raise KseriesError(f"{path}: no [[host]] entries")
    seen: set[str] = set()
    for h in hosts:
        if h.name in seen:
            raise KseriesError(f"{path}: host {h.name!r} is listed twice")
        seen.add(h.name)
    return Inventory(path, hosts, plan)


def _host(d: dict[str, Any], path: Path) -> Host:
    name = d.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise KseriesError(f"{path}: a host has no usable name", hint="name = \"qemu-amd\"")
    where = f"{path}: host {name}"
    vendor, transport = d.get("vendor"), d.get("transport")
    if vendor not in VENDORS:
        raise KseriesError(f"{where}: vendor {vendor!r}", hint=f"one of {', '.join(VENDORS)}")
    if transport not in TRANSPORTS:
        raise KseriesError(f"{where}: transport {transport!r}",
                           hint=f"one of {', '.join(TRANSPORTS)}")
    supports = frozenset(_str_list(d.get("supports", []), path, f"{name}.supports"))
    unknown = supports - set(CAPABILITIES)
    if unknown:
        raise KseriesError(f"{where}: unknown capability {', '.join(sorted(unknown))}",
                           hint=f"known: {', '.join(CAPABILITIES)}")
    qemu = ssh = None
    if transport == "qemu":
        q = d.get("qemu", {})
        if "cpu" not in q:
            raise KseriesError(f"{where}: [host.qemu] needs cpu", hint='cpu = "EPYC,+svm"')
        accel = str(q.get("accel", "auto"))
        if accel not in ACCELS:
            raise KseriesError(f"{where}: accel {accel!r}", hint=f"one of {', '.join(ACCELS)}")
        emulator = str(q.get("emulator", ""))
        if emulator not in EMULATORS:
            raise KseriesError(f"{where}: emulator {emulator!r}",
                               hint=f"one of {', '.join(repr(e) for e in EMULATORS)}")
        if emulator and accel == "kvm":
            raise KseriesError(f"{where}: the emulator's model runs under TCG only",
                               hint='drop accel = "kvm" (the host runs under TCG)')
        qemu = QemuSettings(
            cpu=str(q["cpu"]), memory_mb=int(q.get("memory", 512)), smp=int(q.get("smp", 1)),
            accel=accel, timeout=float(q.get("timeout", 180)),
            extra_args=tuple(_str_list(q.get("extra_args", []), path, f"{name}.qemu.extra_args")),
            emulator=emulator,
        )
    elif transport == "ssh":
        s = d.get("ssh", {})
        if "address" not in s:
            raise KseriesError(f"{where}: [host.ssh] needs address")
        key = s.get("key")
        ssh = SshSettings(
            address=str(s["address"]), user=str(s.get("user", "root")),
            port=int(s.get("port", 22)),
            key=Path(key).expanduser() if key else None,
            connect_timeout=float(s.get("connect_timeout", 10)),
            run_timeout=float(s.get("run_timeout", 600)),
            remote_dir=str(s.get("remote_dir", "/tmp")),
            install_hook=tuple(_str_list(s.get("install_hook", []), path, f"{name}.install_hook")),
            boot_timeout=float(s.get("boot_timeout", 300)),
            options=tuple(_str_list(s.get("options", []), path, f"{name}.ssh.options")),
        )
    return Host(name, vendor, transport, supports, qemu, ssh, dict(d.get("lava", {})))


def _str_list(value: Any, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KseriesError(f"{path}: {key} must be a list of strings")
    return list(value)


def check_expectations(host: Host, *, patched: bool) -> dict[str, Expectation]:
    """What each kernel check should give on ``host``; the virt line only if ``patched``."""
    ext = VIRT_EXTENSION[host.vendor].upper()
    no_kvm = f"{host.name} declares no {ext}: {host.module} cannot initialise, no KVM"
    out = {}
    if host.has_kvm:
        out[CHECK_KVM_INIT] = expect(Status.PASS, reason=f"{host.module} initialises")
        out[CHECK_DEV_KVM] = expect(Status.PASS, reason="/dev/kvm exists")
    else:
        out[CHECK_KVM_INIT] = expect(Status.SKIP, reason=no_kvm)
        out[CHECK_DEV_KVM] = expect(Status.SKIP, reason=no_kvm)
    if patched:
        amd_feature = host.vendor == "amd" and host.has_feature
        lists = "lists buslock" if amd_feature else "without buslock"
        out[CHECK_VIRT_LINE] = expect(Status.PASS, reason=f"virt line in /proc/cpuinfo, {lists}")
    out[CHECK_KERNEL_LOG] = expect(Status.PASS, reason="no WARNING/BUG/Oops in dmesg")
    return out


def test_expectation(host: Host, plan: TestPlan, test: str,
                     traits: SeriesTraits | None = None, *, patched: bool = True) -> Expectation:
    """What a selftest should give on ``host`` before any baseline is known."""
    ext = VIRT_EXTENSION[host.vendor].upper()
    if not host.has_kvm:
        return expect(Status.SKIP, reason=f"{host.name} declares no {ext}: KVM unavailable")
    if plan.kind(test) is Kind.DESIGN:
        if not patched:
            return expect(Status.SKIP, reason="the unpatched base has no bus lock exit on SVM")
        if not host.has_feature or host.vendor != "amd":
            return expect(Status.SKIP, reason=f"the check needs {FEATURE_NAME['amd']}")
        wanted = (traits or SeriesTraits()).design.get(test)
        return wanted or expect(Status.PASS, reason="the series' design holds")
    if plan.kind(test) is Kind.FEATURE:
        if host.has_feature and not patched and host.vendor == "amd":
            return expect(Status.SKIP, reason="the unpatched base's KVM has no bus lock exit "
                          "on SVM: the capability is missing")
        if host.has_feature:
            return expect(Status.PASS, reason=f"{host.name} declares {FEATURE_NAME[host.vendor]}")
        return expect(Status.SKIP, reason=f"the CPU lacks {FEATURE_NAME[host.vendor]}")
    return expect(Status.PASS, Status.SKIP, reason="no baseline: anything but a failure")


def series_traits(series_toml: Path) -> SeriesTraits:
    """The run's expectations of a series, from its ``series.toml``.

    The virt line is expected where a patch carries the ``virt-tag`` change; a
    ``[[design_check]]`` entry (name, expect, reason) gives a design check's
    expected result on a host with the feature.
    """
    data = read_toml(series_toml, "the series")
    virt = any("virt-tag" in p.get("changes", []) for p in data.get("patch", []))
    design = {}
    for d in data.get("design_check", []):
        name, wanted = d.get("name"), str(d.get("expect", "PASS")).upper()
        if not isinstance(name, str) or wanted not in ("PASS", "FAIL"):
            raise KseriesError(f"{series_toml}: a [[design_check]] needs a name and "
                               "expect = PASS or FAIL")
        design[name] = expect(Status(wanted), reason=str(d.get("reason", "")))
    return SeriesTraits(virt_line=virt, design=design)
