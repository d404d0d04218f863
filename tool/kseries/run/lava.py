"""LAVA job definitions: one per host, for labs that already schedule with LAVA.

kseries does not schedule anything itself: ``kseries run --lava`` writes the
YAML and the lab submits it with ``lavacli jobs submit FILE`` (or a worker runs
it with ``lava-run``). The job boots the same kernel and initramfs as the qemu
transport. ``kseries.lava`` on the kernel command line makes the guest's init
give LAVA a shell instead of running the tests itself; LAVA appends its test
overlay to the initramfs (``format: cpio.newc``, ``overlays: lava``) and its
inline test definition runs ``/kseries/lava-tests``, which prints run-tests'
whole output on the console and records each test with ``lava-test-case``:
pass, fail, skip, or unknown for a test that timed out. QEMU hosts use LAVA's
``qemu`` device type; lab machines need ``[host.lava] device_type`` (and
optionally ``boot_method``, ``boot_commands``) in the inventory.

Comparing those results with what each host should do stays kseries' job:
``kseries run --lava-results DIR`` (lava_results.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run.inventory import Host, TestPlan
from kseries.run.qemu import Accel, cmdline

LAVA_FLAG = "kseries.lava"  # on the kernel command line: init starts a shell for LAVA
PROMPT = "kseries-lava# "  # the PS1 of that shell (kselftest/guest/init)
# What init prints before that shell. LAVA waits for it in place of its default
# kernel start message ("Linux version"), which loglevel=4 keeps off the console.
START_MESSAGE = "kseries-lava: a shell for LAVA"
DEFINITION = "kseries-kselftest"  # the test definition; LAVA's suite is "0_" + this
LAVA_TESTS = "/kseries/lava-tests"  # in the initramfs (kselftest/guest/lava-tests)
RESULTS = ("pass", "fail", "skip", "unknown")  # what lava-tests records


def _minutes(seconds: float) -> dict[str, int]:
    return {"minutes": max(1, math.ceil(seconds / 60))}


def kernel_args(accel: Accel) -> str:
    """The qemu transport's command line, plus the flag that asks for LAVA's shell."""
    return f"{cmdline(accel)} {LAVA_FLAG}"


def test_definition(host: Host, tests: list[str], timeout_s: float) -> dict[str, Any]:
    """The inline test definition: lava-tests records one LAVA test case per test."""
    return {
        "timeout": _minutes(timeout_s),
        "definitions": [{
            "from": "inline",
            "name": DEFINITION,
            "path": f"inline/{DEFINITION}.yaml",
            "repository": {
                "metadata": {
                    "format": "Lava-Test Test Definition 1.0",
                    "name": DEFINITION,
                    "description": f"kseries: {', '.join(tests)} on {host.name}",
                },
                "run": {"steps": [LAVA_TESTS]},
            },
        }],
    }


def job(host: Host, plan: TestPlan, *, kernel_url: str, initramfs_url: str, accel: Accel,
        tests: list[str] | None = None, priority: str = "medium",
        visibility: str = "public") -> dict[str, Any]:
    """The job definition for ``host``, as a dict ready for YAML.

    ``tests`` are the ones the initramfs carries (default: the plan's).
    """
    tests = list(tests) if tests is not None else plan.names()
    run_s = plan.test_timeout * len(tests) + 60
    boot_s = host.qemu.timeout if host.qemu else 300.0
    deploy, boot, context, device_type = _platform(host, kernel_url, initramfs_url, accel,
                                                  boot_s)
    job_s = 120 + boot_s + run_s
    d: dict[str, Any] = {
        "job_name": f"kseries {plan.feature} on {host.name}"[:200],
        "device_type": device_type,
        "visibility": visibility,
        "priority": priority,
        "timeouts": {"job": _minutes(job_s), "action": _minutes(max(boot_s, run_s)),
                     "connection": _minutes(120)},
        "metadata": {"kseries.host": host.name, "kseries.vendor": host.vendor,
                     "kseries.supports": ",".join(sorted(host.supports)) or "none",
                     "kseries.tests": ",".join(tests)},
        "actions": [
            {"deploy": deploy},
            {"boot": boot},
            {"test": test_definition(host, tests, run_s)},
        ],
    }
    if context:
        d["context"] = context
    return d


def _ramdisk(url: str) -> dict[str, Any]:
    """The initramfs, with LAVA's test overlay appended to the cpio archive."""
    return {"url": url, "format": "cpio.newc", "overlays": {"lava": True}}


def _platform(host: Host, kernel_url: str, initramfs_url: str, accel: Accel,
              boot_s: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    if host.transport == "qemu" and host.qemu:
        q = host.qemu
        # The qemu device type only sets -cpu for KVM (-cpu host): the model goes here.
        options = [*accel.args(), "-cpu", q.cpu, "-smp", str(q.smp), "-no-reboot",
                   *q.extra_args]
        context: dict[str, Any] = {"arch": "amd64", "memory": q.memory_mb,
                                   "extra_options": options}
        if accel.name == "tcg":
            context["no_kvm"] = True
        deploy = {
            "to": "tmpfs",
            "timeout": _minutes(300),
            "images": {
                "kernel": {"url": kernel_url,
                           "image_arg": f'-kernel {{kernel}} -append "{kernel_args(accel)}"'},
                "ramdisk": {**_ramdisk(initramfs_url), "image_arg": "-initrd {ramdisk}"},
            },
        }
        boot = {"method": "qemu", "media": "tmpfs", "timeout": _minutes(boot_s),
                "prompts": [PROMPT], "parameters": {"kernel-start-message": START_MESSAGE}}
        return deploy, boot, context, str(host.lava.get("device_type", "qemu"))
    device_type = host.lava.get("device_type")
    if not device_type:
        raise KseriesError(f"{host.name}: no LAVA device type",
                           hint="add [host.lava] device_type = \"...\" to the inventory")
    method = str(host.lava.get("boot_method", "ipxe"))
    commands = host.lava.get("boot_commands", "ramdisk")
    deploy = {"to": "tftp", "timeout": _minutes(300),
              "kernel": {"url": kernel_url}, "ramdisk": _ramdisk(initramfs_url)}
    boot = {"method": method, "commands": commands, "timeout": _minutes(boot_s),
            "prompts": [PROMPT], "parameters": {"kernel-start-message": START_MESSAGE}}
    return deploy, boot, {"extra_kernel_args": kernel_args(Accel("kvm", "lab"))}, str(device_type)


def dump(d: dict[str, Any]) -> str:
    """YAML text of a job (PyYAML is a dependency; only --lava needs it)."""
    import yaml

    return str(yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=100))


def write_jobs(hosts: tuple[Host, ...] | list[Host], plan: TestPlan, out_dir: Path, *,
               kernel_url: str, initramfs_url: str, accel: Accel,
               tests: list[str] | None = None) -> list[Path]:
    """One ``<host>.yaml`` per host in ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for h in hosts:
        path = out_dir / f"{h.name}.yaml"
        text = dump(job(h, plan, kernel_url=kernel_url, initramfs_url=initramfs_url,
                        accel=accel, tests=tests))
        path.write_text(f"# LAVA job for {h.describe()}; submit: lavacli jobs submit {path.name}\n"
                        + text)
        paths.append(path)
    return paths
