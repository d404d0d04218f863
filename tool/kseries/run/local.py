"""The local transport: run the selftests on this machine's own kernel.

Only where this machine's /dev/kvm works; the report says that this machine's
kernel, not the built one, was tested.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from pathlib import Path

from kseries import proc
from kseries.errors import KseriesError
from kseries.run.initramfs import GuestFiles
from kseries.run.inventory import Host
from kseries.run.outcome import GuestRun
from kseries.run.qemu import kvm_usable
from kseries.run.ssh import EXIT_INFRA, stage

LOCAL_TIMEOUT = 1800.0


def run(host: Host, tests: Mapping[str, Path], guest: GuestFiles, work: Path, *,
        test_timeout: int) -> GuestRun:
    ok, why = kvm_usable()
    if not ok:
        raise KseriesError(f"{host.name}: cannot run locally: {why}", exit_code=EXIT_INFRA)
    d = stage(tests, guest, work)
    t0 = time.monotonic()
    r = proc.run(["sh", d / "run-tests", d, *tests], env={"TEST_TIMEOUT": str(test_timeout)},
                 timeout=LOCAL_TIMEOUT, check=False, what="run-tests (local)")
    (work / "output.log").write_text(r.stdout + r.stderr)
    return GuestRun(output=r.stdout,
                    kernel_note=f"this machine's own kernel {platform.release()} was tested",
                    duration=time.monotonic() - t0, logs={"output": work / "output.log"})
