"""The qemu transport: boot the built kernel with the test initramfs.

KVM acceleration is used only where /dev/kvm really works, which is probed by
booting the kernel with a tiny init under a timeout (on some machines /dev/kvm
exists but QEMU aborts or hangs). Otherwise single-threaded TCG is used (with
multi-threaded TCG some selftests crash the guest).

The guest writes its results to a second serial port, kept apart from the
console and its kernel messages. A guest that panics or hangs is an
infrastructure failure, reported with the tail of its console.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.build import bzimage
from kseries.build.emulator import Emulator
from kseries.errors import KseriesError
from kseries.run import initramfs
from kseries.run.inventory import Host, QemuSettings
from kseries.run.outcome import DONE, GuestRun

QEMU = "qemu-system-x86_64"
CMDLINE = "console=ttyS0 panic=-1 loglevel=4 rdinit=/init"
PROBE_MARKER = "KSERIES-PROBE-OK"
PANIC = "Kernel panic - not syncing"


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    reason: str  # why it was chosen, for the report

    def args(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm"]
        return ["-accel", "tcg,thread=single"]


@dataclass(frozen=True)
class Boot:
    console: str
    results: str
    returncode: int | None  # None when QEMU was killed at the timeout
    stderr: str
    timed_out: bool
    duration: float


def check_bzimage(path: Path, what: str = "--kernel") -> None:
    """Refuse a file that is not an x86 bzImage, before QEMU is asked to boot it.

    The boot protocol's setup header: the boot flag 0xAA55 at 0x1FE, "HdrS" at
    0x202 and, in loadflags at 0x211, LOADED_HIGH (bit 0), which a bzImage sets.
    """
    hint = "give arch/x86/boot/bzImage of a vm-profile build (kseries build --profile vm)"
    try:
        with path.open("rb") as fh:
            head = fh.read(0x212)
    except OSError as exc:
        raise KseriesError(f"{what} {path}: cannot read it ({exc.strerror})", hint=hint) from exc
    if len(head) < 0x212 or head[0x1FE:0x200] != b"\x55\xaa" or head[0x202:0x206] != b"HdrS":
        raise KseriesError(f"{what} {path}: not a bzImage (no x86 boot setup header: "
                           "0xAA55 at 0x1FE, 'HdrS' at 0x202)", hint=hint)
    if not head[0x211] & 1:
        raise KseriesError(f"{what} {path}: a zImage, not a bzImage (loadflags without "
                           "LOADED_HIGH)", hint=hint)


def kvm_usable() -> tuple[bool, str]:
    """Whether /dev/kvm can even be opened (the cheap half of the probe)."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm on this machine"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user"
    return True, ""


def probe_kvm(kernel: Path, guest: initramfs.GuestFiles, work: Path,
              *, timeout: float = 30.0) -> tuple[bool, str]:
    """Boot ``kernel`` under KVM with an init that prints a marker; True if it did."""
    ok, why = kvm_usable()
    if not ok:
        return False, why
    rd = initramfs.build(work / "probe.cpio", {}, guest=guest, init=guest.probe_init)
    settings = QemuSettings(cpu="host", memory_mb=256, timeout=timeout)
    b = boot(settings, Accel("kvm", "probe"), kernel, rd, work / "probe")
    if PROBE_MARKER in b.console:
        return True, f"a probe boot under KVM reached userspace in {b.duration:.1f}s"
    if b.timed_out:
        return False, f"a probe boot under KVM hung for {timeout:.0f}s"
    detail = " ".join(proc.key_lines(b.stderr, 2)) or f"exit {b.returncode}"
    return False, f"a probe boot under KVM failed: {detail}"


def choose_accel(requested: str, kernel: Path, guest: initramfs.GuestFiles, work: Path,
                 *, probe_timeout: float = 30.0) -> Accel:
    """``auto``: KVM if the probe boots, else TCG; ``kvm``/``tcg``: as asked."""
    if requested == "tcg":
        return Accel("tcg", "TCG requested")
    if requested == "kvm":
        return Accel("kvm", "KVM requested")
    ok, why = probe_kvm(kernel, guest, work, timeout=probe_timeout)
    if ok:
        return Accel("kvm", why)
    return Accel("tcg", f"{why}; using single-threaded TCG (slower, emulates SVM but not VMX)")


def host_tsc_khz(cpuinfo: Path = Path("/proc/cpuinfo")) -> int:
    """This machine's TSC rate as its kernel reports it ("cpu MHz"), or 0.

    Under TCG the guest's RDTSC reads the host's TSC, and the guest kernel's own
    calibration against the PIT fails when its vCPU thread is descheduled (two
    guests on two busy cores): it then marks the TSC unstable, KVM reports no TSC
    frequency and every KVM selftest fails. Passing the rate avoids that; an
    approximate rate is enough for the selftests.
    """
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "cpu MHz":
                return round(float(value) * 1000)
    except (OSError, ValueError):
        pass
    return 0


def cmdline(accel: Accel) -> str:
    khz = host_tsc_khz() if accel.name == "tcg" else 0
    return f"{CMDLINE} tsc_early_khz={khz}" if khz else CMDLINE


MODEL_TRACE = "model-trace.log"


def argv(settings: QemuSettings, accel: Accel, kernel: Path, rd: Path, console: Path,
         results: Path, emulator: Emulator | None = None) -> list[str]:
    """QEMU's command line; with ``emulator``, kseries' QEMU and its model's trace.

    The emulator is built without firmware of its own: it takes the installed
    qemu-system-data's (``-L``). Its trace events, one line per bus lock the
    model handled, go to a file beside the console.
    """
    binary: list[str] = [QEMU]
    if emulator is not None:
        spec = emulator.spec
        binary = [str(emulator.binary)]
        for d in spec.firmware:
            binary += ["-L", str(d)]
        binary += ["-trace", f"enable={spec.trace},file={console.parent / MODEL_TRACE}"]
    return [
        *binary, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        *accel.args(),
        "-cpu", settings.cpu, "-m", str(settings.memory_mb), "-smp", str(settings.smp),
        "-kernel", str(kernel), "-initrd", str(rd), "-append", cmdline(accel),
        "-serial", f"file:{console}", "-serial", f"file:{results}",
        *settings.extra_args,
    ]


def boot(settings: QemuSettings, accel: Accel, kernel: Path, rd: Path, work: Path,
         emulator: Emulator | None = None) -> Boot:
    """Run QEMU until the guest resets (it exits: -no-reboot) or the timeout kills it."""
    work.mkdir(parents=True, exist_ok=True)
    console, results = work / "console.log", work / "results.log"
    for f in (console, results, work / MODEL_TRACE):
        f.unlink(missing_ok=True)
    t0 = time.monotonic()
    timed_out, rc, stderr = False, None, ""
    try:
        r = proc.run(argv(settings, accel, kernel, rd, console, results, emulator),
                     timeout=settings.timeout, check=False, what=f"qemu ({settings.cpu})")
        rc, stderr = r.returncode, r.stderr
    except KseriesError as exc:
        if not isinstance(exc.__cause__, subprocess.TimeoutExpired):
            raise
        timed_out = True  # proc.run killed QEMU
    duration = time.monotonic() - t0
    return Boot(_read(console), _read(results), rc, stderr, timed_out, duration)


def diagnose(b: Boot, timeout: float) -> str:
    """The infrastructure failure shown by a boot, or "" if the guest finished."""
    panic = next((ln.strip() for ln in b.console.splitlines() if PANIC in ln), "")
    if panic:
        return f"guest kernel panicked: {panic[panic.index(PANIC):]}"
    if b.timed_out:
        return f"guest hung: no result and no power-off within {timeout:.0f}s"
    if b.returncode:
        detail = " | ".join(proc.key_lines(b.stderr, 3))
        return f"qemu exited with {b.returncode}: {detail}"
    if DONE not in b.results and DONE not in b.console:
        return "the guest powered off before the tests finished"
    return ""


EMULATED_ACCEL = Accel("tcg", "the Bus Lock Threshold model runs under TCG")


def accel_for(host: Host, accel: Accel) -> Accel:
    """What ``host``'s guest runs under when the run chose ``accel``: an emulated host's
    model is TCG code, so it always runs under TCG."""
    return EMULATED_ACCEL if host.emulated_feature else accel


def run(host: Host, kernel: Path, rd: Path, accel: Accel, work: Path,
        emulator: Emulator | None = None) -> GuestRun:
    """Boot ``host``'s QEMU guest once and bring back what it printed.

    A host whose CPU model is kseries' (``emulator``) boots on that QEMU, under TCG.
    """
    if host.qemu is None:
        raise KseriesError(f"{host.name}: not a qemu host")
    if host.emulated_feature and emulator is None:
        raise KseriesError(f"{host.name}: kseries' emulator is not built",
                           hint="kseries build --emulator")
    accel = accel_for(host, accel)
    b = boot(host.qemu, accel, kernel, rd, work, emulator if host.emulated_feature else None)
    results = b.results if DONE in b.results else b.console
    (work / "qemu.stderr").write_text(b.stderr)
    logs = {"console": work / "console.log", "results": work / "results.log",
            "qemu_stderr": work / "qemu.stderr"}
    if host.emulated_feature:
        logs["model_trace"] = work / MODEL_TRACE
    return GuestRun(
        output=results, console=b.console,
        infra_error=diagnose(b, host.qemu.timeout) or booted_other(kernel, results),
        kernel_note=f"built kernel {kernel}", accel=accel.name, duration=b.duration,
        logs=logs,
    )


def booted_other(kernel: Path, output: str) -> str:
    """The infrastructure failure of a guest that ran another kernel than the
    version ``kernel``'s boot header names (its /proc/version, which the guest
    prints as "version=..."), or ""."""
    prefix = "version=Linux version "
    line = next((ln.strip() for ln in output.splitlines() if ln.startswith(prefix)), "")
    if not line:
        return ""
    text = line.removeprefix(prefix)
    at = text.rfind(") #")
    release, version = text.partition(" (")[0], text[at + 2:] if at >= 0 else ""
    built = bzimage.read(kernel)
    if built.matches(release, version):
        return ""
    return (f"the guest ran {release} {version}, not {built} that the boot header of "
            f"{kernel} names: the image holds another build's kernel")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
