"""The htmldocs check: `make SPHINXDIRS=<dir> htmldocs` before and after each
patch that touches an .rst file, new Sphinx messages by identity (slow: real
Sphinx on the real Debian bases).

The two logs under data/sphinx are real output of Debian's Sphinx 5.3 building
SPHINXDIRS=virt of debian:6.12 with the same edits as the tests below make to
api.rst (only the cache's path was shortened to /cache).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.base import bases
from kseries.check import docs
from kseries.check.report import FAIL, PASS
from test_build_checks import broken_templates, run_checks, statuses

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "sphinx"
TREE = "/cache/trees/debian-6.12/build-htmldocs"
API = "Documentation/virt/kvm/api.rst"
DOC_ROW = 4  # the v2 series' documentation patch

# A title with a short underline and a simple table with text in its column
# margin, appended to the text the api-doc patch adds to api.rst.
BREAKS = """and KVM lets that instruction complete once when the vCPU is resumed.

Vendor differences
----------

==========  ==========
Vendor      RIP
==========  ==========
Intel-VMX-x next
==========  ==========
"""


def test_sphinx_output_parses_into_identities(tmp_path: Path) -> None:
    messages = docs.parse((DATA / "htmldocs-warnings-6.12.log").read_text(), TREE)
    assert [(m.file, m.line, m.level) for m in messages] == [
        ("", 0, "WARNING"), (API, 7884, "WARNING"), (API, 7884, "WARNING"),
        (API, 7896, "ERROR"), (API, 8171, "ERROR")]
    assert messages[1].text == "Title underline too short."
    assert messages[3].text == "Malformed table. Text in column margin in table line 4."
    # the lines the messages point at, and their section titles, as in that api.rst
    lines = [""] * 8171
    lines[7882:7884] = ["Vendor differences", "----------"]
    lines[8041:8043] = ["7.31 KVM_CAP_DISABLE_QUIRKS2", "----------------------------"]
    (tmp_path / API).parent.mkdir(parents=True)
    (tmp_path / API).write_text("\n".join(lines) + "\n")
    got = sorted(str(i) for i in docs.identities(messages, tmp_path))
    assert got == [
        f"{API} (N.N KVM_CAP_DISABLE_QUIRKS2): ERROR: Malformed table. "
        "Text in column margin in table line N.",
        f"{API} (Vendor differences): ERROR: Malformed table. "
        "Text in column margin in table line N.",
        f"{API} (Vendor differences): WARNING: Title underline too short.",
        "WARNING: dot(N) not found, for better output quality install graphviz from "
        "https://www.graphviz.org"]
    # a build that stops: its CRITICAL message first, not make's "Error 2"
    fails = (DATA / "htmldocs-fails-6.12.log").read_text()
    outcome = docs.Outcome(False, tmp_path, docs.parse(fails, TREE), tmp_path / "log", 0.0, fails)
    assert docs.first_errors(outcome)[0] == f"{API}:7883: CRITICAL: Title level inconsistent:"


def test_broken_underline_and_table_are_new_on_the_doc_patch_only(
        debian_612: bases.Base, tmp_path: Path) -> None:
    t = broken_templates(tmp_path, "series/v2/changes/api-doc.toml.j2",  # v2's own Note!
                         "and KVM lets that instruction complete once when the vCPU is "
                         "resumed.\n", BREAKS)
    report = run_checks(debian_612, t, tmp_path, ["applies", "htmldocs"])
    assert statuses(report, "htmldocs") == {1: PASS, 2: PASS, 3: PASS, DOC_ROW: FAIL, 5: PASS}
    cell = next(c for c in report.cells if c.check == "htmldocs" and c.row == DOC_ROW)
    new = [d for d in cell.details if not d.startswith("log: ")]
    # debian:6.12's api.rst has a malformed table of its own (KVM_CAP_DISABLE_QUIRKS2):
    # same message, another section, so not new
    assert new == [
        f"{API} (Vendor differences): ERROR: Malformed table. "
        "Text in column margin in table line N.",
        f"{API} (Vendor differences): WARNING: Title underline too short."], cell.details


@pytest.mark.parametrize("base", ["debian_612", "debian_61"])
def test_clean_series_has_no_new_sphinx_warnings(base: str, request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    report = run_checks(request.getfixturevalue(base), ROOT / "templates", tmp_path,
                        ["applies", "htmldocs"])
    assert statuses(report, "htmldocs") == {r: PASS for r in range(1, 6)}, report.cells
    reasons = {c.row: c.reason for c in report.cells if c.check == "htmldocs"}
    assert reasons[DOC_ROW].startswith(f"SPHINXDIRS=virt: no new warnings in {API}")
    assert reasons[1] == "no .rst touched"
