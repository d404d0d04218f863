"""Issue 5's b4 branch and range-diffs, with the real b4 (offline) on the real bases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import submit_fixtures as fx
from kseries.cli import main

git_config, private_cache = fx.git_config, fx.private_cache
base_612, series_612 = fx.base_612, fx.series_612

B4 = Path(sys.executable).parent / "b4"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def test_b4_prep_branch_reads_and_sends(series_612: fx.rendering.RenderedSeries,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    if not B4.exists():
        pytest.skip(f"b4 is not installed next to {sys.executable}: make deps installs it")
    repo = tmp_path / "linux"
    git(tmp_path, "init", "-q", str(repo))
    git(repo, "commit", "-q", "--allow-empty", "-m", "the user's own work")
    head = git(repo, "rev-parse", "HEAD")
    results = fx.gate_met(series_612, tmp_path)
    assert main(["submit", "--base", "debian:6.12", "--b4", "--repo", str(repo), *results]) == 0
    assert git(repo, "rev-parse", "HEAD") == head  # the user's checkout did not move
    assert "b4/buslock" in git(repo, "branch", "--list", "b4/buslock")
    log = git(repo, "log", "--format=%s", "b4/buslock", "-7").splitlines()
    assert log[5] == "Add support for the Bus Lock Threshold"  # the cover-letter commit
    assert log[0] == "KVM: selftests: Add bus lock exit test"
    # b4 works on the checked-out branch: use a worktree of it, not the user's checkout.
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(wt), "b4/buslock")
    info = subprocess.run([str(B4), "--offline-mode", "prep", "--show-info"], cwd=wt,
                          capture_output=True, text=True, check=True).stdout
    assert "cover-subject: Add support for the Bus Lock Threshold" in info
    assert "prefixes: RFC" in info and f"base-commit: {series_612.base.commit}" in info
    git(wt, "config", "sendemail.smtpserver", "/bin/true")
    out = tmp_path / "b4-out"
    subprocess.run([str(B4), "--offline-mode", "send", "--no-sign", "-o", str(out)], cwd=wt,
                   capture_output=True, text=True, check=True)
    mails = sorted(out.glob("*.eml"))
    assert len(mails) == 6
    subjects = [next(ln for ln in m.read_text().splitlines() if ln.startswith("Subject:"))
                for m in mails]
    assert subjects[0].startswith("Subject: [PATCH RFC v2 0/5] Add support for the Bus Lock")
    assert subjects[3] == "Subject: [PATCH RFC v2 3/5] KVM: SVM: Enable Bus lock threshold exit"


def test_diff_between_the_debian_bases_shows_the_adaptation(
        base_612: object, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import debian
    debian("6.1")
    assert main(["diff", "--base", "debian:6.1", "--base", "debian:6.12"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln[:1].isdigit()]
    assert len(lines) == 5  # each patch paired with its adaptation
    assert " = " in lines[0] or " ! " in lines[0]
    # the 6.12 neighbour of the new CPUID bit has a quoted flag name; 6.1's does not
    assert '(15*32+28) /* "" SVME addr check */' in out
    assert "(15*32+28) /* SVME addr check */" in out


def test_range_diff_against_an_earlier_rendering_goes_into_the_cover(
        series_612: fx.rendering.RenderedSeries, tmp_path: Path) -> None:
    results = fx.gate_met(series_612, tmp_path)
    earlier = Path(__file__).resolve().parents[1] / "patches" / "v2" / "debian-6.12"
    out = tmp_path / "outbox"
    assert main(["submit", "--base", "debian:6.12", "-v", "3", "-o", str(out),
                 "--range-diff-against", str(earlier), *results]) == 0
    cover = next(out.glob("*0000-cover-letter.patch")).read_text()
    assert "Subject: [RFC PATCH v3 0/5]" in cover
    assert "Range-diff" in cover
    assert "1:  " in cover and "5:  " in cover
