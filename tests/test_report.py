"""The report: table, status and exit codes, JSON, the verdict submit reads; and the
`kseries check` command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from check_fixtures import copy_series, debian, edit, patch_file, rendered
from kseries.base.bases import Base
from kseries.check import verdict
from kseries.check.report import (
    ERROR,
    FAIL,
    PASS,
    SKIP,
    WARN,
    Cell,
    Report,
    save_verdict,
    write_json,
)
from kseries.cli import main
from kseries.cli.check import print_report

FAKE = Base("debian:6.12", "fake-6.12", Path("/nonexistent"), "a" * 40, "a fake base")


def report(*cells: Cell) -> Report:
    r = Report(FAKE, "somewhere", False, ["0: cover letter", "1: x86: A", "2: x86: B"],
               ["applies", "trailers"])
    for c in cells:
        r.add(c)
    return r


def test_status_and_exit_codes() -> None:
    clean = report(Cell("applies", 1, PASS), Cell("trailers", 1, WARN, "advice"),
                   Cell("trailers", 0, SKIP, "why"))
    assert (clean.status, clean.exit_code) == ("pass", 0)
    findings = report(Cell("applies", 1, PASS), Cell("trailers", 2, FAIL, "no Signed-off-by"))
    assert (findings.status, findings.exit_code) == ("findings", 2)
    broken = report(Cell("trailers", 2, FAIL), Cell("applies", 0, ERROR, "perl: not found"))
    assert (broken.status, broken.exit_code) == ("error", 1)


def test_table_shows_the_worst_cell_per_row() -> None:
    r = report(Cell("applies", 1, PASS), Cell("applies", 2, WARN, "ws"),
               Cell("applies", 2, FAIL, "does not apply"), Cell("trailers", 1, PASS))
    assert r.table() == [["", "applies", "trailers"], ["0: cover letter", "-", "-"],
                         ["1: x86: A", "PASS", "PASS"], ["2: x86: B", "FAIL", "-"]]
    assert [c.reason for c in r.problems()] == ["ws", "does not apply"]
    assert r.worst("applies") == FAIL and r.worst("trailers") == PASS


def test_json_and_verdict(tmp_path: Path, isolated_cache: Path) -> None:
    r = report(Cell("trailers", 2, FAIL, "no Signed-off-by", ("no Signed-off-by",)))
    r.seconds["trailers"] = 0.25
    write_json(r, tmp_path / "out" / "report.json")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["status"] == "findings" and data["exit_code"] == 2
    assert data["checks"]["trailers"] == {"status": FAIL, "seconds": 0.25}
    assert data["cells"][0] == {"check": "trailers", "row": 2, "status": FAIL,
                                "reason": "no Signed-off-by", "details": ["no Signed-off-by"]}
    assert save_verdict(r) is None  # no tip: nothing submit could match
    r.tip = "b" * 40
    path = save_verdict(r)
    assert path == verdict.report_path(FAKE, r.tip) and path.is_relative_to(isolated_cache)
    assert verdict.status(FAKE, r.tip) == verdict.FINDINGS


def test_printed_table_lists_problems(capsys: pytest.CaptureFixture[str]) -> None:
    r = report(Cell("applies", 1, PASS), Cell("applies", 2, FAIL, "does not apply: x.c",
                                                ("error: x.c: patch does not apply",)))
    print_report(r)
    out = capsys.readouterr().out
    assert "1: x86: A" in out and "FAIL applies (patch 2): does not apply: x.c" in out
    assert "    error: x.c: patch does not apply" in out
    assert out.rstrip().endswith("FINDINGS: 1 PASS, 1 FAIL in 0.0s")


# --- the command, on the real 6.12 base -------------------------------------------


@pytest.fixture(scope="module")
def base() -> Base:
    return debian("6.12")


def test_check_command_clean_and_findings(
    base: Base, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # verdicts go to tmp_path, not the shared cache (the base stays there)
    monkeypatch.setattr(verdict, "report_path",
                        lambda b, tip: tmp_path / "reports" / b.key / f"{tip}.json")
    series = rendered(base, tmp_path)
    good = copy_series(series, tmp_path / "good")
    out_json = tmp_path / "report.json"
    code = main(["check", "--base", "debian:6.12", "--only", "trailers,shape", "--only",
                 "applies", str(good), "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    data = json.loads(out_json.read_text())
    assert data["status"] == "pass" and list(data["checks"]) == ["applies", "trailers", "shape"]
    assert data["series"]["tip"] == series.tip  # the files are exactly the rendering
    assert "verdict: pass (not saved for submit: checkpatch, prefix" in printed

    assert verdict.status(base, series.tip) is None
    assert main(["check", "--base", "debian:6.12", "--fast", str(good)]) == 0
    assert verdict.status(base, series.tip) == verdict.PASS  # what submit reads
    assert "verdict: pass (" in capsys.readouterr().out

    bad = copy_series(series, tmp_path / "bad")
    edit(patch_file(bad, 1), "Signed-off-by: Manali Shukla <manali.shukla@amd.com>\n", "")
    code = main(["check", "--base", "debian:6.12", "--fast", "--skip", "checkpatch,recipients",
                 str(bad)])
    printed = capsys.readouterr().out
    assert code == 2, printed
    assert "FAIL trailers (patch 1): no Signed-off-by" in printed


def test_check_command_tool_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--only", "nonsense", str(tmp_path)]) == 1
    assert "unknown check 'nonsense'" in capsys.readouterr().err
    assert main(["check", "--base", str(tmp_path / "nowhere"), "--only", "trailers"]) == 1
    assert "no such directory" in capsys.readouterr().err
