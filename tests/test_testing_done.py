"""The Testing done block from what really ran, and the gate of the series' testing rules.

A real TCG run of the series' kernel gives the Runs of the block. What needs
hardware that is not here (an AMD host with the Bus Lock Threshold, an Intel
host with bus lock detection) comes from ``testing_fixtures.lab_results``,
which says exactly what is a fixture.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import submit_fixtures as fx
from conftest_harness import HOW, require_artifacts
from kseries.base import bases
from kseries.base.bases import Base
from kseries.build import artifacts, profiles
from kseries.check import report as reports
from kseries.check import verdict
from kseries.cli import main
from kseries.errors import KseriesError
from kseries.render import manifest as manifests
from kseries.render.series import NOT_RUN, PatchSummary, RenderedSeries
from kseries.run import identity
from kseries.submit import testing
from testing_fixtures import LAB_AMD, lab_results, suite_results

git_config, private_cache = fx.git_config, fx.private_cache
base_612, series_612, merged_612 = fx.base_612, fx.series_612, fx.merged_612

# What the merged series' manifest asks: the check and both PASSes.
BOTH_PASSES = """
[[gate]]
check = "all"

[[gate]]
vendor = "amd"
needs = "bus_lock_threshold"
result = "PASS"

[[gate]]
vendor = "intel"
needs = "bus_lock_detect"
result = "PASS"
"""


def block_of(text: str) -> str:
    """The Testing done block in submit's output or a cover letter."""
    start = text.index("Testing done:")
    end = re.compile(r"\nv1:").search(text, start)
    return text[start:end.start() if end else text.find("\n\n\n", start)].strip("\n")


def passing_check(series: RenderedSeries) -> None:
    """FIXTURE: a saved passing `kseries check` of the tip (the real one takes minutes)."""
    rows = ["0: cover letter", *(f"{p.number}: {p.subject}" for p in series.manifest.patches)]
    checks = ["applies", "checkpatch", "build", "warnings", "layout", "selftest"]
    r = reports.Report(series.base, "rendered for debian:6.12", True, rows, checks,
                       tip=series.tip, manifest=series.manifest,
                       profiles=(profiles.load_profile(fx.TEMPLATES, "kvm-x86"),))
    for row in range(1, len(rows)):
        r.add(reports.Cell("applies", row, "PASS", "applies"))
        r.add(reports.Cell("checkpatch", row, "PASS", "total: 0 errors, 0 warnings"))
        r.add(reports.Cell("build", row, "PASS", "kvm-x86: arch/x86/kvm/"))
        r.add(reports.Cell("warnings", row, "PASS", "no C file touched"))
    r.add(reports.Cell("layout", 0, "PASS", "bus_lock_counter at 0x120, size 1024"))
    r.add(reports.Cell("selftest", 0, "PASS", "static, no warnings"))
    assert reports.save_verdict(r) is not None


# --- a real run under TCG --------------------------------------------------------


def test_a_tcg_run_gives_the_testing_done_block(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`kseries run` of the series' kernel under TCG, then `submit --dry-run --results`."""
    art = require_artifacts()
    if art.patched_kernel is None or "kvm_buslock_test" not in art.selftests:
        pytest.skip(f"no build of the series: {HOW}")
    res = tmp_path / "res"
    tests = [f"--test=kvm_buslock_test={art.selftests['kvm_buslock_test']}",
             f"--test=svm_vmcall_test={art.selftests['svm_vmcall_test']}"]
    code = main(["run", "--kernel", str(art.patched_kernel), "--baseline-kernel",
                 str(art.kernel), *tests, "--accel", "tcg", "-o", str(res)])
    out = capsys.readouterr().out
    assert code == 0, out
    # What kseries run recorded: the series, the kernel, each host as it saw itself.
    summary = json.loads((res / "summary.json").read_text())
    built = artifacts.load(bases.resolve("debian:6.12", fx.TEMPLATES, install=False), "vm",
                           "v2")
    s = summary["series"]
    assert s["tip"] == built.commit and s["name"] == "buslock" and s["version"] == 2
    assert s["kernel_sha256"] == identity.sha256_of(art.patched_kernel)
    assert s["base"]["label"] == "debian:6.12" and len(s["base"]["commit"]) == 40
    hosts = {h["host"]: h for h in summary["hosts"]}
    amd, intel = hosts["qemu-amd"], hosts["qemu-intel"]
    assert amd["seen"]["cpu_vendor"] == "AuthenticAMD" and "svm" in amd["seen"]["cpu_flags"]
    assert intel["seen"]["cpu_vendor"] == "GenuineIntel"
    assert "vmx" not in intel["seen"]["cpu_flags"]  # TCG has no VMX
    assert amd["seen"]["kernel_release"].startswith("6.12")
    assert amd["accel"] == "tcg" and amd["built_kernel"] is True
    feature = next(t for t in amd["tests"] if t["name"] == "kvm_buslock_test")
    assert feature["actual"] == "SKIP" and any("SKIP" in line for line in feature["ktap"])
    baseline = json.loads((res / "baseline" / "summary.json").read_text())
    assert baseline["series"]["patched"] is False and baseline["series"]["tip"] == ""

    code = main(["submit", "--base", "debian:6.12", "--dry-run", "--results", str(res)])
    out = capsys.readouterr().out
    assert code in (0, 2), out  # 2 if this tip's check did not pass here
    assert f"counted: {res}" in out
    block = block_of(out)
    assert all(len(line) <= 75 for line in block.splitlines()), block
    runs, not_tested = block.split("\nRuns:\n")[1].split("\nNot tested:\n")
    flat = " ".join(runs.split())
    assert "qemu-amd (amd): AuthenticAMD" in flat and "qemu-intel (intel): GenuineIntel" in flat
    assert flat.count("; qemu under tcg; the series' kernel 6.12") == 2
    assert "kvm_buslock_test SKIP: KVM_BUS_LOCK_DETECTION_EXIT not supported" in flat
    assert ("smoke tests, each against the same run on the unpatched base: "
            "svm_vmcall_test PASS") in flat
    flat = " ".join(not_tested.split())
    # the default hosts include the emulated EPYC: it does not count as hardware
    assert ("kvm_buslock_test on an AMD host with the Bus Lock Threshold (no such host in "
            "the results, only emulated ones)") in flat
    assert "kvm_buslock_test on an Intel host with bus lock detection" in flat
    assert "SEV-ES and SEV-SNP guests" in flat and "KVM-unit-tests" in flat


# --- results from elsewhere --------------------------------------------------------


def test_results_of_another_tip_or_base_are_left_out(series_612: RenderedSeries, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    base = series_612.base
    other_tip = lab_results(tmp_path / "other-tip", base, "0123456789ab" * 3 + "0123")
    other_base = lab_results(tmp_path / "other-base", base, series_612.tip,
                             base_commit="fedcba987654" * 3 + "fedc")
    good = lab_results(tmp_path / "lab", base, series_612.tip)
    code = main(["submit", "--base", "debian:6.12", "--dry-run", "--results", str(other_tip),
                 "--results", str(other_base), "--results", str(good)])
    out = capsys.readouterr().out
    assert code == 2  # the v2 gate: never checked here
    assert (f"left out: {other_tip}: its series tip is 0123456789ab, not "
            f"{series_612.tip[:12]}, the tip being sent") in out
    assert (f"left out: {other_base}: its base is {base.describe} (fedcba987654), not "
            f"{base.describe} ({base.commit[:12]})") in out
    assert f"counted: {good} (lab-epyc-9005, lab-xeon-spr, qemu-amd-blt)" in out
    assert "1 run(s) counted, 2 left out" in out
    # Only the run of this tip is in the block.
    assert block_of(out).count("lab-epyc-9005") == 1


def test_a_results_dir_that_is_not_one_is_one_line(series_612: RenderedSeries, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "summary.json").write_text('{"schema": "other"}')
    for path, why in ((tmp_path / "none", "cannot read run results"),
                      (tmp_path / "junk", "not the summary of a kseries run")):
        code = main(["submit", "--base", "debian:6.12", "--dry-run", "--results", str(path)])
        err = capsys.readouterr().err
        assert code == 1 and why in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# --- the gate ------------------------------------------------------------------------


def test_the_merged_rules_refuse_without_the_lab_and_pass_with_it(
        merged_612: RenderedSeries, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series_612 = merged_612  # the merged series' own manifest asks for all three rules
    passing_check(series_612)
    argv = ["submit", "--base", "debian:6.12", "--series", "merged"]
    # The state, without the lab's results: the check is there, both PASSes are not.
    assert main([*argv, "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert "gate of" in out and "4 of 5 rule(s) not met" in out
    assert "  met      1. kseries check of the tip passed: the last check passed" in out
    assert ("  MISSING  2. kvm_buslock_test on an AMD host with the Bus Lock Threshold: no "
            "such host in the results") in out
    # Submit refuses, one line per missing rule, and writes nothing.
    box = tmp_path / "outbox"
    assert main([*argv, "-o", str(box)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    gate_lines = [ln for ln in err if ln.startswith("kseries: gate: ")]
    assert len(gate_lines) == 4, err
    assert "AMD host with the Bus Lock Threshold (rule 2 of " in gate_lines[0]
    assert "Intel host with bus lock detection (rule 3 of " in gate_lines[1]
    assert "emulated AMD host with the Bus Lock Threshold (kseries' CPU model) (rule 4 of " \
        in gate_lines[2]
    assert "svm KVM selftest suite on a qemu-amd-blt host (rule 5 of " in gate_lines[3]
    assert all("--results DIR" in ln and "--force" in ln for ln in gate_lines)
    assert not box.exists()
    # With the lab's results (FIXTURE: the hosts cannot exist here) and a suite run
    # (FIXTURE: the guests' output) the gate is met.
    lab = lab_results(tmp_path / "lab", series_612.base, series_612.tip)
    svm = suite_results(tmp_path / "suite", series_612.base, series_612.tip)
    argv += ["--results", str(svm)]
    assert main([*argv, "--results", str(lab), "-o", str(box)]) == 0
    captured = capsys.readouterr()
    assert "all 5 rule(s) met" in captured.out
    cover = next(box.glob("*0000-cover-letter.patch")).read_text()
    block = block_of(cover)
    assert NOT_RUN not in cover and block in captured.out
    flat = " ".join(block.split())
    assert "lab-epyc-9005 (amd): AuthenticAMD AMD EPYC 9555 64-Core Processor; over ssh" in flat
    assert ("kvm_buslock_test PASS: L1: 100 bus lock exits; L2: 100 bus lock exits") in flat
    assert "lab-xeon-spr (intel): GenuineIntel Intel(R) Xeon(R) Platinum 8480+" in flat
    _, not_tested = block.split("\nNot tested:\n")
    assert "Bus Lock Threshold" not in not_tested and "bus lock detection" not in not_tested
    emulated = " ".join(block.split("qemu-amd-blt (amd): ")[1].split("\n- ")[0].split())
    assert "EMULATED: kseries Bus Lock Threshold model on QEMU 1:10.0.13+ds-0+deb13u1" in emulated
    assert "EMULATED kvm_buslock_test PASS: L1: 100 bus lock exits" in emulated
    assert "the model counted 200 bus lock exits delivered, 200 bus locks let through" in emulated
    assert "nested guests" not in not_tested  # L2 passed on both
    # Builds, from the check record: the profile, its options, each patch.
    assert ("kvm-x86 profile: defconfig, CRYPTO_DEV_CCP=y EXPERT=y KVM=m KVM_AMD=m "
            "KVM_AMD_SEV=y KVM_INTEL=m KVM_WERROR=y VIRTUALIZATION=y") in flat
    assert ("1/5 KVM: x86: Make kvm_pio_request.linear_rip a common field for user exits: "
            "build PASS, W=1 PASS, checkpatch --strict PASS") in flat
    assert "VMCB layout and constants (DWARF of a built object): PASS" in flat
    assert all(len(line) <= 75 for line in block.splitlines())
    # The same records, the same block.
    again = tmp_path / "again"
    assert main([*argv, "--results", str(lab), "-o", str(again)]) == 0
    capsys.readouterr()
    assert next(again.glob("*0000-cover-letter.patch")).read_text() == cover


def test_force_still_names_what_is_missing(merged_612: RenderedSeries, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Only the AMD lab host: the Intel rule, the emulated one and the check are missing.
    lab = lab_results(tmp_path / "lab", merged_612.base, merged_612.tip, (LAB_AMD,))
    box = tmp_path / "outbox"
    code = main(["submit", "--base", "debian:6.12", "--series", "merged",
                 "--results", str(lab), "-o", str(box), "--force"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "--force: gate: kseries check of the tip passed" in err
    assert "--force: gate: kvm_buslock_test on an Intel host" in err
    _, not_tested = block_of(next(box.glob("*0000-*")).read_text()).split("\nNot tested:\n")
    flat = " ".join(not_tested.split())
    assert "the builds and checks of each patch (the tip" in flat and "never been checked" in flat
    assert ("kvm_buslock_test on an Intel host with bus lock detection (no such host in the "
            "results)") in flat
    assert "kvm_buslock_test on an AMD host" not in flat
    assert ("kvm_buslock_test on an emulated AMD host with the Bus Lock Threshold (kseries' "
            "CPU model) (no such host in the results, only hardware ones)") in flat


def test_testing_notes_are_the_authors_statement(series_612: RenderedSeries, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    verdict.save(series_612.base, series_612.tip, {"status": verdict.PASS})
    notes = tmp_path / "notes.txt"
    notes.write_text("Booted a SEV-ES guest on an EPYC 9005 host and ran a split-lock loop in "
                     "it; the host stayed responsive.\n")
    box = tmp_path / "outbox"
    lab = lab_results(tmp_path / "lab", series_612.base, series_612.tip)  # v2: the emulated PASS
    svm = suite_results(tmp_path / "suite", series_612.base, series_612.tip)  # and its suite
    code = main(["submit", "--base", "debian:6.12", "--testing-notes", str(notes),
                 "--results", str(lab), "--results", str(svm), "-o", str(box)])
    assert code == 0, capsys.readouterr().err
    block = block_of(next(box.glob("*0000-*")).read_text())
    assert f"\n\n{testing.AUTHOR}\nBooted a SEV-ES guest" in block
    assert "the host stayed responsive." in block
    assert all(len(line) <= 75 for line in block.splitlines())
    # Without the option, kseries writes no statement of its own.
    assert main(["submit", "--base", "debian:6.12", "--results", str(lab),
                 "--results", str(svm), "-o", str(tmp_path / "plain")]) == 0
    capsys.readouterr()
    assert testing.AUTHOR not in next((tmp_path / "plain").glob("*0000-*")).read_text()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["submit", "--base", "debian:6.12", "--testing-notes", str(empty),
                 "--dry-run"]) == 1
    assert "the file is empty" in capsys.readouterr().err


# --- data and records, without a base --------------------------------------------------


def test_gate_rules_are_data(tmp_path: Path) -> None:
    both = (manifests.HostRule("amd", "bus_lock_threshold", "PASS"),
            manifests.HostRule("intel", "bus_lock_detect", "PASS"))
    emulated = manifests.HostRule("amd", "bus_lock_threshold", "PASS", evidence="emulated")
    merged = manifests.load(fx.TEMPLATES / "series" / "merged").gate
    assert merged == (manifests.CheckRule("all"), *both, emulated,  # the shipped merged series
                      manifests.SuiteRule("svm", "qemu-amd-blt"))
    shutil.copytree(fx.TEMPLATES / "series", tmp_path / "series")  # with common/
    t = tmp_path / "series" / "v2"
    assert manifests.load(t).gate == (manifests.CheckRule("all"), emulated,
                                      manifests.SuiteRule("svm", "qemu-amd-blt"))
    text = re.sub(r'\[\[gate\]\]\n(\w+ = "\w+"\n)+', "", (t / "series.toml").read_text())
    (t / "series.toml").write_text(text)
    assert manifests.load(t).gate == manifests.DEFAULT_GATE  # no [[gate]]: the check
    (t / "series.toml").write_text(text + BOTH_PASSES)
    assert manifests.load(t).gate[1:] == both
    for bad, says in (('vendor = "arm"\nneeds = "x"\nresult = "PASS"', "vendor 'arm'"),
                      ('vendor = "amd"\nresult = "PASS"', "needs = CAPABILITY"),
                      ('vendor = "amd"\nneeds = "svm"\nresult = "OK"', "result 'OK'"),
                      ('check = "all"\nvendor = "amd"', "only check = NAME"),
                      ('host = "x"', "unknown key 'host'")):
        (t / "series.toml").write_text(f"{text}\n[[gate]]\n{bad}\n")
        with pytest.raises(KseriesError, match=re.escape(says)) as exc:
            manifests.load(t)
        assert "[[gate]] 1" in str(exc.value) and str(t / "series.toml") in str(exc.value)


def test_check_json_records_the_series_and_what_it_built(tmp_path: Path,
                                                         isolated_cache: Path) -> None:
    m = manifests.load(fx.TEMPLATES / "series" / "v2")
    base = Base("debian:6.12", "debian-6.12", tmp_path, "b" * 40, "Debian linux-source-6.12")
    r = reports.Report(base, "rendered", True, ["0: cover letter", "1: one"],
                       ["build", "checkpatch"], tip="a" * 40, manifest=m,
                       profiles=(profiles.load_profile(fx.TEMPLATES, "kvm-x86"),))
    r.add(reports.Cell("build", 1, "PASS", "kvm-x86: arch/x86/kvm/"))
    r.add(reports.Cell("checkpatch", 1, "WARN", "1 check"))
    d = r.to_json()
    assert d["series"]["name"] == "buslock" and d["series"]["version"] == 2
    assert d["series"]["tip"] == "a" * 40 and d["base"]["commit"] == "b" * 40
    prof = d["built"]["profiles"][0]
    assert prof["name"] == "kvm-x86" and prof["options"]["KVM_WERROR"] == "y"
    assert d["built"]["patches"] == [{"row": 1, "label": "1: one", "results": {
        "build": {"status": "PASS", "reason": "kvm-x86: arch/x86/kvm/"},
        "checkpatch": {"status": "WARN", "reason": "1 check"}}}]
    reports.save_verdict(r)
    rec = reports.load_record(base, "a" * 40)
    assert rec is not None and rec.status == "pass" and rec.checks["checkpatch"] == "WARN"
    assert rec.cell("build", 1) == reports.Cell("build", 1, "PASS", "kvm-x86: arch/x86/kvm/")
    assert reports.load_record(base, "c" * 40) is None


@pytest.mark.parametrize("name", ["v2", "merged"])
def test_render_claims_no_testing(synthetic: Path, tmp_path: Path, name: str) -> None:
    from kseries.render import series as rendering
    b = bases.resolve(str(synthetic), fx.TEMPLATES)
    s = rendering.render(b, fx.TEMPLATES / "series" / name, fx.KSELFTEST, tmp_path / "out")
    cover = s.files[0].read_text()
    assert NOT_RUN in cover
    for claim in ("SEV-ES guests", "run on Intel and AMD hosts", "exercised with nested"):
        assert claim not in cover
    assert all(len(line) <= 75 for line in NOT_RUN.splitlines())


def test_what_a_host_saw_is_recorded_and_read_back(tmp_path: Path) -> None:
    from kseries.run import records
    from testing_fixtures import LAB_INTEL, host_report
    intel = host_report(LAB_INTEL)
    # Intel's bus lock detection is not on the virt line: an empty one is right there.
    virt = next(t for t in intel.tests if t.name == "cpuinfo_virt")
    assert virt.ok and virt.reason == "virt: (empty)"
    assert intel.seen.cpu_vendor == "GenuineIntel" and "bus_lock_detect" in intel.seen.cpu_flags
    base = Base("debian:6.12", "debian-6.12", tmp_path, "b" * 40, "Debian linux-source-6.12")
    rec = records.load(lab_results(tmp_path / "lab", base, "a" * 40))
    assert rec.series.tip == "a" * 40 and rec.series.base_commit == "b" * 40
    h = next(h for h in rec.hosts if h.name == "lab-xeon-spr")
    assert h.seen.cpu_model == "Intel(R) Xeon(R) Platinum 8480+" and h.built_kernel
    feature = h.test("kvm_buslock_test")
    assert feature is not None and "ok 1 L1: 100 bus lock exits" in feature.ktap
    assert testing.levels(feature) == [("PASS", "L1: 100 bus lock exits"),
                                       ("PASS", "L2: 100 bus lock exits")]


def test_builds_name_the_matrix_profiles_that_did_not_pass() -> None:
    """The Builds lines of a check with one column per profile (a record made here)."""
    cols = {p: f"build:{p}" for p in ("kvm-x86", "kvm-x86-nosmm", "kvm-i386")}
    checks = {"applies": "PASS", **{c: "PASS" for c in cols.values()}, "warnings": "PASS",
              "sparse": "PASS", "htmldocs": "PASS", "checkpatch": "PASS"}
    cells = [reports.Cell(cols["kvm-x86-nosmm"], 0, "SKIP", "the base has no CONFIG_KVM_SMM"),
             *(reports.Cell(c, 1, "PASS", "ok") for p, c in cols.items() if p != "kvm-x86-nosmm"),
             reports.Cell(cols["kvm-x86"], 2, "PASS", "ok"),
             reports.Cell(cols["kvm-i386"], 2, "FAIL", "VCPU_REGS_R8 undeclared"),
             *(reports.Cell(n, r, "PASS", "ok") for r in (1, 2)
               for n in ("warnings", "sparse", "htmldocs", "checkpatch"))]
    rec = reports.Record("findings", "a" * 40, (), checks, tuple(cells), ())
    patches = [PatchSummary(1, "one", (), 1, 0), PatchSummary(2, "two", (), 1, 0)]
    text = "\n".join(testing.builds(rec, patches))
    assert ("1/2 one: build PASS in 2 profiles (not applicable: kvm-x86-nosmm), W=1 PASS, "
            "sparse PASS, htmldocs PASS, checkpatch --strict PASS") in " ".join(text.split())
    assert "build kvm-i386 FAIL (VCPU_REGS_R8 undeclared); PASS in 1 other profiles" in \
        " ".join(text.split())


@pytest.mark.parametrize(("checks", "says"), [
    (None, "no kseries check ran on this tip"),
    ({"applies": "PASS"}, "the last kseries check did not run it"),
    ({"applies": "PASS", "htmldocs": "FAIL"}, "the htmldocs check gave FAIL on this tip"),
    ({"applies": "PASS", "htmldocs": "PASS"}, ""),
])
def test_not_tested_says_why_htmldocs_is_missing(checks: dict[str, str] | None,
                                                 says: str) -> None:
    """The api.rst line of Not tested says whether the check never ran, left htmldocs
    out, or ran it and saw it fail; and is gone when it passed."""
    from kseries.submit.evidence import Evidence
    rec = None if checks is None else reports.Record("findings", "a" * 40, (), checks, (), ())
    base = bases.resolve("debian:6.12", fx.TEMPLATES, install=False)
    ev = Evidence(base, "a" * 40, rec, (), ())
    patches = (PatchSummary(1, "doc", ("Documentation/virt/kvm/api.rst",), 6, 0),)
    lines = [ln for ln in testing.not_tested(testing.Inputs(ev, (), patches, "the base"))
             if ln.startswith("make htmldocs")]
    assert lines == ([f"make htmldocs for Documentation/virt/kvm/api.rst: {says}"]
                     if says else [])
