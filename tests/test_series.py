"""`--series`: the series is a choice of data, on every command that takes one.

Runs the real CLI on the synthetic tree (a small fake kernel, see synthetic.py)
and real git; the Debian bases are covered by test_debian.py and the build
checks by test_build_checks.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEMPLATES
from kseries.cli import build_parser, main
from kseries.cli.pipeline import stages
from synthetic import git

# Every command whose work depends on which series it is.
SERIES_COMMANDS = [
    ["render"], ["apply", "--branch", "b"], ["facts"], ["check"], ["build"], ["run"],
    ["submit"], ["pipeline"],
]


@pytest.mark.parametrize("argv", SERIES_COMMANDS, ids=lambda a: a[0])
def test_every_command_takes_series(argv: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(argv).series == "v2"  # the default: make run is unchanged
    assert parser.parse_args([*argv, "--series", "merged"]).series == "merged"


def test_diff_takes_two_series() -> None:
    args = build_parser().parse_args(["diff", "--series", "v2", "--series", "merged"])
    assert args.series == ["v2", "merged"] and args.base == []


def test_pipeline_hands_the_series_to_every_stage(tmp_path: Path) -> None:
    args = build_parser().parse_args(["pipeline", "--series", "merged", "-o", str(tmp_path)])
    for stage in stages(args):
        for argv in stage.argv:
            i = argv.index("--series")
            assert argv[i + 1] == "merged", (stage.name, argv)


def test_render_merged(synthetic: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert main(["render", "--series", "merged", "--base", str(synthetic), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5 patches and a cover letter in" in printed
    names = sorted(p.name for p in out.glob("*.patch"))
    assert names[0] == "v5-0000-cover-letter.patch" and len(names) == 6
    one = (out / names[1]).read_text()
    assert "Subject: [PATCH v5 1/5] KVM: x86: Make kvm_pio_request.linear_rip a common" in one
    assert "+\tunsigned long cui_linear_rip;" in one and "-\tunsigned long linear_rip;" in one
    four = next(out.glob("v5-0004-*.patch")).read_text()
    assert "complete_userspace_buslock" in four
    # the completion reloads the counter only when RIP is unchanged
    assert re.search(r"\+\tif \(kvm_is_linear_rip\(vcpu, vcpu->arch\.cui_linear_rip\)\)\n"
                     r"\+\t\tsvm->vmcb->control\.bus_lock_counter = 1;", four)
    # nested: vmcb12's RIP is compared, vmcb01's counter is never written
    assert "svm->nested.ctl.bus_lock_rip == vmcb12_rip" in four
    assert "vmcb01->control.bus_lock_counter" not in four
    three = next(out.glob("v5-0003-*.patch")).read_text()
    assert "arch/x86/kvm/" not in three.split("\n---\n", 1)[1]  # definitions only


def test_series_of_ones_own(synthetic: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    # A user's series: the shipped ones copied whole, one subject changed.
    mine = tmp_path / "series"
    shutil.copytree(TEMPLATES / "series", mine)
    manifest = mine / "merged" / "series.toml"
    manifest.write_text(manifest.read_text().replace(
        'subject = "KVM: selftests: Add test to verify KVM_CAP_X86_BUS_LOCK_EXIT"',
        'subject = "KVM: selftests: Add a bus lock exit test"'))
    out = tmp_path / "o"
    assert main(["render", "--series", str(mine / "merged"), "--base", str(synthetic),
                 "-o", str(out)]) == 0
    assert "[PATCH v5 5/5] KVM: selftests: Add a bus lock exit test" in \
        next(out.glob("v5-0005-*.patch")).read_text()


@pytest.mark.parametrize("spec,line", [
    ("nope", "kseries: error: --series nope: no such series: choose merged or v2, or give "
             "the path of a series directory"),
    ("/", "kseries: error: --series /: / has no series.toml"),
])
def test_unknown_series_is_one_line(synthetic: Path, tmp_path: Path, spec: str, line: str,
                                    isolated_cache: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "kseries", "render", "--series", spec,
                        "--base", str(synthetic), "-o", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith(line) and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_apply_merged_creates_its_branch(synthetic: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    head = git(synthetic, "rev-parse", "HEAD")
    assert main(["apply", "--series", "merged", "--base", str(synthetic), "--branch",
                 "buslock-v5"]) == 0
    assert git(synthetic, "rev-list", "--count", f"{head}..buslock-v5") == "5"
    assert git(synthetic, "log", "-1", "--format=%s", "buslock-v5") == \
        "KVM: selftests: Add test to verify KVM_CAP_X86_BUS_LOCK_EXIT"
    assert git(synthetic, "rev-parse", "HEAD") == head
    assert git(synthetic, "status", "--porcelain") == ""


def test_diff_of_the_two_series_pairs_what_kept_its_purpose(
        synthetic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--base", str(synthetic), "--series", "v2", "--series",
                 "merged"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"range-diff: v2 on {synthetic} -> merged on {synthetic}")
    pairs = re.findall(r"^(\d+|-):\s+\S+ ([<>!=]) (\d+|-):\s+\S+ (.*)$", out, re.M)
    by_new = {new: (old, mark) for old, mark, new, _ in pairs}
    assert by_new["2"] == ("2", "!")  # the CPUID bit: same purpose, new form
    assert by_new["1"] == ("-", ">")  # cui_linear_rip is new
    assert by_new["5"] == ("5", "!")  # the selftest
    dropped = [subject for old, mark, _, subject in pairs if mark == "<"]
    assert "x86/cpu: Add virt tag in /proc/cpuinfo" in dropped
