"""LAVA job definitions: valid against LAVA's own job schema (lava_common, from
Debian's lava-common package, run with the system python) and our own checks of
the structure LAVA expects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest_harness import KSELFTEST
from kseries.errors import KseriesError
from kseries.run import inventory, lava
from kseries.run.inventory import Host
from kseries.run.qemu import Accel

yaml = pytest.importorskip("yaml", reason="PyYAML is needed for --lava: pip install pyyaml")

SYSTEM_PYTHON = "/usr/bin/python3"
LAVA_VALIDATE = """
import sys, yaml
from lava_common.schemas import validate
for path in sys.argv[1:]:
    validate(yaml.safe_load(open(path)), strict=True)
    print("valid", path)
"""
TCG = Accel("tcg", "test")


def jobs(tmp_path: Path, inv_name: str) -> list[Path]:
    inv = inventory.load(KSELFTEST / inv_name)
    return lava.write_jobs(inv.hosts, inv.plan, tmp_path / "lava",
                           kernel_url="https://lab.example.org/k/bzImage",
                           initramfs_url="https://lab.example.org/k/initramfs.cpio", accel=TCG)


def minutes(t: dict[str, int]) -> int:
    assert list(t) == ["minutes"] and t["minutes"] >= 1
    return t["minutes"]


def check_structure(job: dict[str, Any]) -> None:
    """What a LAVA job needs, checked by hand (lava_common may not be installed)."""
    for key in ("job_name", "device_type", "timeouts", "visibility", "actions"):
        assert key in job, key
    assert 0 < len(job["job_name"]) <= 200
    assert job["visibility"] in ("public", "personal") or "group" in job["visibility"]
    assert job["priority"] in ("high", "medium", "low")
    total = minutes(job["timeouts"]["job"])
    assert minutes(job["timeouts"]["action"]) <= total
    kinds = [next(iter(a)) for a in job["actions"]]
    assert kinds == ["deploy", "boot", "test"]
    for a in job["actions"]:
        (body,) = a.values()
        assert minutes(body["timeout"]) <= total
    deploy, boot, test = (next(iter(a.values())) for a in job["actions"])
    if deploy["to"] == "tmpfs":
        assert set(deploy["images"]) == {"kernel", "ramdisk"}
        assert "{kernel}" in deploy["images"]["kernel"]["image_arg"]
        assert "rdinit=/init" in deploy["images"]["kernel"]["image_arg"]
        assert boot["method"] == "qemu" and job["device_type"] == "qemu"
        assert "tcg,thread=single" in job["context"]["extra_options"]
    else:
        assert deploy["to"] == "tftp" and deploy["kernel"]["url"] and deploy["ramdisk"]["url"]
        assert boot["method"] and boot["commands"]
    for image in ([deploy["images"]["ramdisk"]] if deploy["to"] == "tmpfs" else
                  [deploy["ramdisk"]]):
        # LAVA appends its test overlay to the initramfs.
        assert image["format"] == "cpio.newc" and image["overlays"] == {"lava": True}
    assert boot["prompts"] == [lava.PROMPT]
    assert boot["parameters"]["kernel-start-message"] == lava.START_MESSAGE
    (definition,) = test["definitions"]
    assert definition["from"] == "inline" and definition["name"] == lava.DEFINITION
    assert definition["repository"]["run"]["steps"] == [lava.LAVA_TESTS]
    # The guest side: init starts LAVA's shell with that prompt when the job asks for it,
    # and lava-tests records every test with lava-test-case, a skip as a skip.
    init = (KSELFTEST / "guest" / "init").read_text()
    assert lava.LAVA_FLAG in init and f"PS1='{lava.PROMPT}'" in init
    assert f'echo "{lava.START_MESSAGE}"' in init
    lava_tests = (KSELFTEST / "guest" / "lava-tests").read_text()
    assert 'lava-test-case "$name" --result "$result"' in lava_tests
    assert '"ok "*" # SKIP"*) result=skip' in lava_tests


@pytest.mark.parametrize("inv_name", ["hosts.toml", "lab-example.toml"])
def test_jobs_have_the_structure_lava_expects(tmp_path: Path, inv_name: str) -> None:
    paths = jobs(tmp_path, inv_name)
    assert len(paths) == len(inventory.load(KSELFTEST / inv_name).hosts)
    for path in paths:
        text = path.read_text()
        assert text.startswith("# LAVA job for ")
        check_structure(yaml.safe_load(text))


@pytest.mark.parametrize("inv_name", ["hosts.toml", "lab-example.toml"])
def test_jobs_validate_against_lava_schema(tmp_path: Path, inv_name: str) -> None:
    paths = jobs(tmp_path, inv_name)
    if not Path(SYSTEM_PYTHON).is_file() or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import lava_common.schemas, voluptuous, yaml"],
            capture_output=True, check=False).returncode != 0:
        pytest.skip("LAVA's schema is not installed: apt-get install lava-common")
    r = subprocess.run([SYSTEM_PYTHON, "-c", LAVA_VALIDATE, *map(str, paths)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"valid {p}" for p in paths]


def test_lava_schema_rejects_a_broken_job(tmp_path: Path) -> None:
    """The schema check is real: a job without visibility fails it."""
    if shutil.which(SYSTEM_PYTHON) is None or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import lava_common.schemas"],
            capture_output=True, check=False).returncode != 0:
        pytest.skip("LAVA's schema is not installed: apt-get install lava-common")
    (path,) = jobs(tmp_path, "hosts.toml")[:1]
    job = yaml.safe_load(path.read_text())
    del job["visibility"]
    path.write_text(yaml.safe_dump(job))
    r = subprocess.run([SYSTEM_PYTHON, "-c", LAVA_VALIDATE, str(path)],
                       capture_output=True, text=True, check=False)
    assert r.returncode != 0 and "visibility" in r.stderr


def test_expectations_travel_in_metadata(tmp_path: Path) -> None:
    inv = inventory.load(KSELFTEST / "lab-example.toml")
    epyc = inv.select(["lab-epyc-9005"])[0]
    job = lava.job(epyc, inv.plan, kernel_url="u/k", initramfs_url="u/r", accel=TCG)
    assert job["device_type"] == "x86"
    assert job["metadata"]["kseries.supports"] == "bus_lock_threshold,nested,svm"
    assert job["actions"][1]["boot"]["method"] == "ipxe"


def test_a_lab_host_without_a_device_type_is_refused() -> None:
    host = Host("bare", "amd", "ssh", frozenset({"svm"}))
    plan = inventory.TestPlan(smoke=(), feature="kvm_buslock_test")
    with pytest.raises(KseriesError, match="no LAVA device type"):
        lava.job(host, plan, kernel_url="k", initramfs_url="r", accel=TCG)
