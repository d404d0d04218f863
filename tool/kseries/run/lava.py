"""LAVA job definitions: one per host, for labs that already schedule with LAVA.

kseries does not schedule anything itself: ``kseries run --lava`` writes the
YAML and the lab submits it with ``lavacli jobs submit FILE``. The job boots
the same kernel and initramfs as the qemu transport (the init script runs the
selftests on the serial console) and reads the KTAP lines with a LAVA
``monitors`` test action. QEMU hosts use LAVA's ``qemu`` device type; lab
machines need ``[host.lava] device_type`` (and optionally ``boot_method``,
``boot_commands``) in the inventory.

LAVA's monitor records "ok" as pass and "not ok" as fail; a skip shows as a
pass there. Comparing with what each host should do stays kseries' job.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run.inventory import Host, TestPlan
from kseries.run.qemu import Accel

MONITOR_PATTERN = r"(?P<result>(ok|not ok)) \d+ (?P<test_case_id>\S+)"
FIXUPDICT = {"ok": "pass", "not ok": "fail"}
KTAP_START, KTAP_END = "KSERIES-KTAP-BEGIN", "KSERIES-KTAP-END"
KERNEL_ARGS = "console=ttyS0,115200 panic=-1 loglevel=4 rdinit=/init"


def _minutes(seconds: float) -> dict[str, int]:
    return {"minutes": max(1, math.ceil(seconds / 60))}


def job(host: Host, plan: TestPlan, *, kernel_url: str, initramfs_url: str, accel: Accel,
        priority: str = "medium", visibility: str = "public") -> dict[str, Any]:
    """The job definition for ``host``, as a dict ready for YAML."""
    tests = plan.names()
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
            {"test": {
                "timeout": _minutes(run_s),
                "monitors": [{
                    "name": "kseries-kselftest",
                    "start": KTAP_START,
                    "end": KTAP_END,
                    "pattern": MONITOR_PATTERN,
                    "fixupdict": dict(FIXUPDICT),
                }],
            }},
        ],
    }
    if context:
        d["context"] = context
    return d


def _platform(host: Host, kernel_url: str, initramfs_url: str, accel: Accel,
              boot_s: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str]:
    if host.transport == "qemu" and host.qemu:
        q = host.qemu
        options = [*accel.args(), "-smp", str(q.smp), "-no-reboot", *q.extra_args]
        context = {"arch": "amd64", "cpu": q.cpu, "memory": q.memory_mb,
                   "extra_options": options}
        if accel.name == "tcg":
            context["no_kvm"] = "True"
        deploy = {
            "to": "tmpfs",
            "timeout": _minutes(300),
            "images": {
                "kernel": {"url": kernel_url,
                           "image_arg": f'-kernel {{kernel}} -append "{KERNEL_ARGS}"'},
                "ramdisk": {"url": initramfs_url, "image_arg": "-initrd {ramdisk}"},
            },
        }
        boot = {"method": "qemu", "media": "tmpfs", "timeout": _minutes(boot_s)}
        return deploy, boot, context, str(host.lava.get("device_type", "qemu"))
    device_type = host.lava.get("device_type")
    if not device_type:
        raise KseriesError(f"{host.name}: no LAVA device type",
                           hint="add [host.lava] device_type = \"...\" to the inventory")
    method = str(host.lava.get("boot_method", "ipxe"))
    commands = host.lava.get("boot_commands", "ramdisk")
    deploy = {"to": "tftp", "timeout": _minutes(300),
              "kernel": {"url": kernel_url}, "ramdisk": {"url": initramfs_url}}
    boot = {"method": method, "commands": commands, "timeout": _minutes(boot_s)}
    return deploy, boot, {"extra_kernel_args": KERNEL_ARGS}, str(device_type)


def dump(d: dict[str, Any]) -> str:
    """YAML text of a job (PyYAML is a dependency; only --lava needs it)."""
    import yaml

    return str(yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=100))


def write_jobs(hosts: tuple[Host, ...] | list[Host], plan: TestPlan, out_dir: Path, *,
               kernel_url: str, initramfs_url: str, accel: Accel) -> list[Path]:
    """One ``<host>.yaml`` per host in ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for h in hosts:
        path = out_dir / f"{h.name}.yaml"
        text = dump(job(h, plan, kernel_url=kernel_url, initramfs_url=initramfs_url,
                        accel=accel))
        path.write_text(f"# LAVA job for {h.describe()}; submit: lavacli jobs submit {path.name}\n"
                        + text)
        paths.append(path)
    return paths
