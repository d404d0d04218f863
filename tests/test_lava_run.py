"""The job `kseries run --lava` writes, run by LAVA itself: Debian's lava-dispatcher.

A local LAVA ``qemu`` device: its device dictionary is rendered with LAVA's own
qemu device-type template from Debian's lava-server package (the package is
fetched from bookworm with kseries' own apt configuration and unpacked when the
server itself is not installed; the template is not copied into this repository). ``lava-run``
boots the same kernel and initramfs as the qemu transport under TCG and runs
the selftests through LAVA's test shell. LAVA's recorded results must say
pass / fail / skip per test exactly as kseries' own qemu run of the same
kernel; ``kseries run --lava-results`` must then judge them as that run.

One test binary is a stand-in that fails (smm_test here: a tiny static program,
see conftest_harness), so that a failure is seen travelling through LAVA too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest_harness import (
    FAIL_PROGRAM,
    KSELFTEST,
    VmArtifacts,
    artifacts_or_build,
    run_cli,
    static_program,
)
from kseries import proc
from kseries.base import archive
from kseries.base.cache import cache_root
from kseries.errors import KseriesError
from kseries.progress import RecordingReporter
from kseries.run import harness, inventory, lava_results
from kseries.run.ktap import Status

yaml = pytest.importorskip("yaml", reason="PyYAML is needed for --lava: pip install pyyaml")
pytestmark = pytest.mark.slow

LAVA_RUN = "/usr/bin/lava-run"
DEVICE_TYPES = Path("/usr/share/lava-server/device-types")
LAVA_HOW = ("make deps installs it: apt-get install --no-install-recommends lava-dispatcher on "
            "Debian 12, bookworm's packages on 13 (make apt-lava)")
REAL = ("kvm_create_max_vcpus", "svm_vmcall_test", "kvm_buslock_test")
DEVICE_DICT = """{% extends 'qemu.jinja2' %}
{% set mac_addr = '52:54:00:12:34:59' %}
{% set netdevice = 'user,restrict=on' %}
"""
LAVA_STATUS = {"pass": Status.PASS, "fail": Status.FAIL, "skip": Status.SKIP,
               "unknown": Status.ERROR}


def device_types() -> Path:
    """LAVA's device-type templates: the installed server's, else from its Debian package."""
    if (DEVICE_TYPES / "qemu.jinja2").is_file():
        return DEVICE_TYPES
    d = cache_root() / "lava-server"
    found = sorted(d.glob("*/usr/share/lava-server/device-types/qemu.jinja2"))
    if found:
        return found[-1].parent
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("no lava-server templates and no apt-get/dpkg-deb to fetch its package")
    # The server of the dispatcher's version, from bookworm (trixie has no LAVA) through
    # kseries' own apt configuration: the machine's apt is not asked.
    version = proc.run(["dpkg-query", "-W", "-f", "${Version}", "lava-dispatcher"],
                       check=False).stdout.strip()
    try:
        archive.fetch_binary(archive.archive("bookworm", ("bookworm",)), "lava-server",
                             version, d)
    except KseriesError as exc:
        pytest.skip(f"cannot fetch Debian's lava-server package for its templates: {exc}")
    deb = sorted(d.glob("lava-server_*.deb"))[-1]
    unpacked = d / deb.stem
    proc.run(["dpkg-deb", "-x", str(deb), str(unpacked)], what="dpkg-deb -x lava-server")
    deb.unlink()
    return unpacked / "usr/share/lava-server/device-types"


def render_device(job: dict[str, Any], out: Path) -> Path:
    """The device dictionary, rendered as lava-server does: the job's context as variables."""
    import jinja2

    types = device_types()
    (out / "devices").mkdir(parents=True, exist_ok=True)
    (out / "devices" / "kseries-qemu.jinja2").write_text(DEVICE_DICT)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(out / "devices"), str(types)]),
                             trim_blocks=True, autoescape=False)
    text = env.get_template("kseries-qemu.jinja2").render(**job.get("context", {}))
    device = yaml.safe_load(text)
    assert "qemu" in device["actions"]["boot"]["methods"]
    path = out / "device.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def kernels() -> VmArtifacts:
    if not Path(LAVA_RUN).is_file():
        pytest.skip(f"no {LAVA_RUN}: {LAVA_HOW}")
    art = artifacts_or_build()
    missing = [n for n in REAL if n not in art.selftests]
    if missing:
        pytest.skip(f"no build of {', '.join(missing)} (the series' build makes them)")
    return art


def log_entries(log: Path) -> list[dict[str, Any]]:
    """lava-run's log: one YAML flow mapping a line."""
    entries: list[dict[str, Any]] = lava_results.load(log)
    return entries


def lava_cases(log: Path) -> dict[str, str]:
    """kseries' test cases as LAVA's own log records them: name -> pass/fail/skip."""
    out = {}
    for entry in log_entries(log):
        msg = entry.get("msg")
        if entry.get("lvl") == "results" and isinstance(msg, dict) and \
                msg.get("definition") != "lava":
            out[str(msg["case"])] = str(msg["result"])
    return out


def test_lava_runs_the_job_and_records_what_kseries_sees(
        kernels: VmArtifacts, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kernel = kernels.patched_kernel or kernels.kernel
    patched = ["--unpatched"] if kernels.patched_kernel is None else []
    tests = {n: kernels.selftests[n] for n in REAL}
    tests["smm_test"] = static_program(tmp_path, "smm_test", FAIL_PROGRAM)  # the stand-in
    test_flags = [a for n, p in tests.items() for a in ("--test", f"{n}={p}")]
    inv = inventory.load(KSELFTEST / "hosts.toml")
    amd = inv.select(["qemu-amd"])
    plan = inventory.TestPlan(smoke=tuple(n for n in tests if n != "kvm_buslock_test"),
                              feature="kvm_buslock_test", test_timeout=inv.plan.test_timeout)

    # kseries' own qemu run of this kernel.
    own = harness.run_hosts(amd, plan, kernel=kernel, tests=tests, out_dir=tmp_path / "own",
                            kselftest=KSELFTEST, reporter=RecordingReporter(),
                            patched=not patched, accel="tcg")
    own_status = {t.name: t.actual for t in own.hosts[0].tests if t.name in tests}
    assert own_status["kvm_buslock_test"] is Status.SKIP
    assert own_status["smm_test"] is Status.FAIL

    # The job kseries writes for the same host, kernel and tests.
    out = tmp_path / "res"
    code = run_cli(["run", "--lava", "--kernel", str(kernel), *test_flags, "--host", "qemu-amd",
                    "--accel", "tcg", "-o", str(out)])
    assert code == 0
    capsys.readouterr()
    job_path = out / "lava" / "qemu-amd.yaml"
    job = yaml.safe_load(job_path.read_text())
    dispatch = tmp_path / "dispatcher"
    dispatch.mkdir()
    device = render_device(job, tmp_path)
    log = dispatch / "log.yaml"
    # The job id names LAVA's scratch directory (/var/lib/lava/dispatcher/tmp/ID): ours alone.
    r = proc.run([LAVA_RUN, "--job-id", str(os.getpid()), "--output-dir", str(dispatch),
                  "--device", str(device), str(job_path)], timeout=900, check=False,
                 what="lava-run")
    log.write_text(r.stderr)
    assert r.returncode == 0, "\n".join(r.stderr.splitlines()[-30:])
    assert yaml.safe_load((dispatch / "result.yaml").read_text())["result"] == "pass"

    # LAVA's own results: per test exactly what kseries' run says; the skip is a skip.
    cases = lava_cases(log)
    assert {n: LAVA_STATUS[v] for n, v in cases.items()} == own_status
    assert cases["kvm_buslock_test"] == "skip"
    excerpt = [e["msg"] for e in log_entries(log)
               if e.get("lvl") == "results" and e["msg"].get("definition") != "lava"]

    # kseries reads the dispatcher's directory (with the job it wrote) as its own results.
    shutil.copy(job_path, dispatch / "job.yaml")
    code = run_cli(["run", "--lava-results", str(dispatch), "-o", str(tmp_path / "from-lava"),
                    *patched])
    text = capsys.readouterr().out
    assert code == own.exit_code == 2, text  # the stand-in's failure, in both
    summary = json.loads((tmp_path / "from-lava" / "summary.json").read_text())
    (host,) = summary["hosts"]
    assert host["host"] == "qemu-amd"
    got = {t["name"]: (t["actual"], t["ok"]) for t in host["tests"]}
    mine = {t.name: (t.actual.value, t.ok) for t in own.hosts[0].tests}
    assert got == mine  # checks and tests: the same judgement as kseries' own run
    buslock = next(t for t in host["tests"] if t["name"] == "kvm_buslock_test")
    assert "not supported" in buslock["reason"]  # the reason, from the console's KTAP
    assert (tmp_path / "from-lava" / "junit.xml").is_file()
    assert (tmp_path / "from-lava" / "results.ktap").is_file()
    # The same job as a server exports it: the log as a YAML list, the results apart.
    server = tmp_path / "server" / "job-1"
    server.mkdir(parents=True)
    (server / "log.yaml").write_text(yaml.safe_dump(log_entries(log)))
    (server / "results.yaml").write_text(yaml.safe_dump(
        [{"suite": "0_kseries-kselftest", "name": n, "result": v} for n, v in cases.items()]))
    shutil.copy(job_path, server / "definition.yaml")
    again = lava_results.run_report(tmp_path / "server", inv, tmp_path / "from-server",
                                    patched=not patched, baseline=None)
    assert {t.name: (t.actual.value, t.ok) for t in again.hosts[0].tests} == mine
    # Against a baseline (the same tests on the unpatched base's kernel, run by kseries),
    # as for its own runs: the stand-in fails there too, so its failure is expected.
    if kernels.patched_kernel is not None:
        base = tmp_path / "own-base"
        harness.run_hosts(amd, plan, kernel=kernels.kernel, tests=tests, out_dir=base,
                          kselftest=KSELFTEST, reporter=RecordingReporter(), patched=False,
                          accel="tcg")
        code = run_cli(["run", "--lava-results", str(dispatch), "--baseline", str(base),
                        "-o", str(tmp_path / "from-lava-vs-base")])
        text = capsys.readouterr().out
        assert code == 0, text
        assert "as on the unpatched base: FAIL" in (
            tmp_path / "from-lava-vs-base" / "summary.json").read_text()
    print("\nLAVA-EXCERPT " + json.dumps(excerpt))


def test_a_results_export_alone_judges_the_tests(tmp_path: Path) -> None:
    """A server's results export (no log): the tests are judged, the checks are not."""
    export = [
        {"job": "7", "suite": "lava", "name": "job", "result": "pass", "metadata": {}},
        {"job": "7", "suite": "0_kseries-kselftest", "name": "svm_vmcall_test",
         "result": "pass", "measurement": "1.50", "unit": "seconds"},
        {"job": "7", "suite": "0_kseries-kselftest", "name": "kvm_buslock_test",
         "result": "skip", "measurement": "0.10", "unit": "seconds"},
    ]
    d = tmp_path / "job-7"
    d.mkdir()
    (d / "results.yaml").write_text(yaml.safe_dump(export))
    (d / "job.yaml").write_text(yaml.safe_dump({
        "device_type": "qemu", "actions": [],
        "metadata": {"kseries.host": "qemu-amd",
                     "kseries.tests": "svm_vmcall_test,kvm_buslock_test"}}))
    inv = inventory.load(KSELFTEST / "hosts.toml")
    report = lava_results.run_report(d, inv, tmp_path / "out", patched=True, baseline=None)
    (h,) = report.hosts
    assert [t.name for t in h.tests] == ["svm_vmcall_test", "kvm_buslock_test"]
    assert [t.actual for t in h.tests] == [Status.PASS, Status.SKIP]
    assert h.tests[0].seconds == 1.5
    assert report.exit_code == 0 and any("checks were not judged" in n for n in h.notes)
    # A job that LAVA recorded as failed is an infrastructure failure.
    export[0]["result"] = "fail"
    export[0]["metadata"] = {"error_type": "Infrastructure", "error_msg": "qemu died"}
    (d / "results.yaml").write_text(yaml.safe_dump(export))
    failed = lava_results.run_report(d, inv, tmp_path / "out2", patched=True, baseline=None)
    assert failed.exit_code == 3 and "qemu died" in failed.hosts[0].infra_error


def test_lava_results_refuses_what_is_not_lava(tmp_path: Path) -> None:
    (tmp_path / "notes.yaml").write_text("hello: world\n")
    with pytest.raises(KseriesError, match="no LAVA job log, results or job definition"):
        lava_results.read(tmp_path)
    with pytest.raises(KseriesError, match="no such directory"):
        lava_results.read(tmp_path / "missing")
