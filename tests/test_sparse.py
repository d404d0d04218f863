"""The sparse check (make C=2) on the real Debian base (slow: runs sparse on kernel code).

The parser is tested on what sparse 0.6.4 said in a real kseries build of the
6.12 base's SVM and x86 objects; the check on a series broken on purpose (a
global variable that should be static, which sparse reports and gcc 12's W=1
does not) and on the clean series, whose base already has sparse warnings of
its own that must not be reported.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import pytest

from kseries.base import bases
from kseries.check import sparse
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP
from test_build_checks import ROOT, broken_templates, run_checks, statuses

pytestmark = pytest.mark.slow

needs_sparse = pytest.mark.skipif(shutil.which("sparse") is None,
                                  reason="needs sparse: apt-get install sparse")

SRC = "/cache/kseries/trees/debian-6.12/build-kvm-x86"
# `make C=2 arch/x86/kvm/svm/svm.o arch/x86/kvm/x86.o` on debian:6.12 (the tail of
# its log; only the cache's path is shortened to SRC).
REAL = f"""\
  CC [M]  arch/x86/kvm/svm/svm.o
  CC [M]  arch/x86/kvm/x86.o
  CHECK   {SRC}/arch/x86/kvm/svm/svm.c
{SRC}/arch/x86/kvm/svm/svm.c:1510:13: warning: context imbalance in 'svm_srso_vm_destroy' \
- different lock contexts for basic block
{SRC}/arch/x86/kvm/svm/svm.c:1530:13: warning: context imbalance in 'svm_srso_vm_init' \
- different lock contexts for basic block
  CHECK   {SRC}/arch/x86/kvm/x86.c
{SRC}/arch/x86/kvm/x86.c:2633:13: warning: context imbalance in '__kvm_start_pvclock_update' \
- wrong count at exit
{SRC}/arch/x86/kvm/x86.c:2647:13: warning: context imbalance in 'kvm_end_pvclock_update' \
- unexpected unlock
{SRC}/arch/x86/kvm/x86.c: note: in included file (through {SRC}/include/linux/notifier.h, ...):
{SRC}/include/linux/srcu.h:320:9: warning: context imbalance in 'vcpu_enter_guest' \
- unexpected unlock
{SRC}/include/linux/srcu.h:320:9: warning: context imbalance in 'vcpu_run' - unexpected unlock
make[1]: Leaving directory '/cache/kseries/build/debian-6.12/kvm-x86'
"""

# `sparse t.c` (0.6.4) on three lines: a __user define, a function assigning a
# __user pointer to a plain one, a function returning an undefined identifier
TYPES = """\
t.c:2:34: warning: incorrect type in assignment (different address spaces)
t.c:2:34:    expected int *p
t.c:2:34:    got int [noderef] __user *u
t.c:2:5: warning: symbol 'g' was not declared. Should it be static?
t.c:3:22: error: undefined identifier 'undefined_thing'
"""


def test_parse_real_sparse_output() -> None:
    got = sparse.parse(REAL, SRC, "arch/x86/kvm/x86.c")
    assert sorted(map(str, got)) == [
        "arch/x86/kvm/x86.c: warning: context imbalance in '__kvm_start_pvclock_update' "
        "- wrong count at exit",
        "arch/x86/kvm/x86.c: warning: context imbalance in 'kvm_end_pvclock_update' "
        "- unexpected unlock",
        # a header's warning is the header's, relative to the tree
        "include/linux/srcu.h: warning: context imbalance in 'vcpu_enter_guest' "
        "- unexpected unlock",
        "include/linux/srcu.h: warning: context imbalance in 'vcpu_run' - unexpected unlock",
    ]
    # each object's diagnostics are its own section of the log; the whole log has all six
    assert {d.file for d in sparse.parse(REAL, SRC, "arch/x86/kvm/svm/svm.c")} == {
        "arch/x86/kvm/svm/svm.c"}
    assert len(sparse.parse(REAL, SRC)) == 6


def test_parse_joins_expected_and_got_and_reads_errors() -> None:
    got = sorted(map(str, sparse.parse(TYPES)))
    assert got == [
        "t.c: error: undefined identifier 'undefined_thing'",
        "t.c: warning: incorrect type in assignment (different address spaces); "
        "expected int *p; got int [noderef] __user *u",
        "t.c: warning: symbol 'g' was not declared. Should it be static?",
    ]


def test_identity_ignores_line_numbers() -> None:
    before = sparse.parse(REAL, SRC, "arch/x86/kvm/svm/svm.c")
    moved = REAL.replace("svm.c:1510:13:", "svm.c:1544:5:").replace("svm.c:1530:13:",
                                                                     "svm.c:1564:13:")
    added = moved.replace(
        f"  CHECK   {SRC}/arch/x86/kvm/x86.c",
        f"{SRC}/arch/x86/kvm/svm/svm.c:1340:5: warning: symbol 'kseries_bus_locks' was not "
        f"declared. Should it be static?\n  CHECK   {SRC}/arch/x86/kvm/x86.c")
    assert sparse.parse(moved, SRC, "arch/x86/kvm/svm/svm.c") == before
    new = sparse.parse(added, SRC, "arch/x86/kvm/svm/svm.c") - before
    assert [str(d) for d in new] == [
        "arch/x86/kvm/svm/svm.c: warning: symbol 'kseries_bus_locks' was not declared. "
        "Should it be static?"]


def test_no_sparse_is_one_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing named sparse there
    cells = list(sparse.check(cast(Context, None)))  # decided before the context is read
    assert [(c.check, c.row, c.status) for c in cells] == [("sparse", 0, SKIP)]
    assert "apt-get install sparse" in cells[0].reason


@needs_sparse
def test_new_sparse_warning_is_caught(debian_612: bases.Base, tmp_path: Path) -> None:
    # a global that should be static: sparse says so, gcc 12's W=1 has no warning for it
    t = broken_templates(tmp_path, "series/v2/changes/svm-buslock.toml.j2",
                         "static int bus_lock_exit(struct kvm_vcpu *vcpu)\n",
                         "int kseries_bus_locks;\n\n"
                         "static int bus_lock_exit(struct kvm_vcpu *vcpu)\n")
    report = run_checks(debian_612, t, tmp_path, ["applies", "sparse"])
    got = statuses(report, "sparse")
    assert got == {1: PASS, 2: PASS, 3: FAIL, 4: PASS, 5: PASS}, report.cells
    cell = next(c for c in report.cells if c.check == "sparse" and c.row == 3)
    assert cell.reason.startswith("1 new sparse warning(s): arch/x86/kvm/svm/svm.c: warning: "
                                  "symbol 'kseries_bus_locks' was not declared"), cell.reason
    assert cell.details[0] == ("arch/x86/kvm/svm/svm.c: warning: symbol 'kseries_bus_locks' "
                               "was not declared. Should it be static?")
    log = Path(cell.details[-1].removeprefix("log: "))
    assert "kseries_bus_locks" in log.read_text()


@needs_sparse
def test_clean_series_has_no_new_sparse_warning(debian_612: bases.Base,
                                                tmp_path: Path) -> None:
    report = run_checks(debian_612, ROOT / "templates", tmp_path, ["applies", "sparse"])
    assert statuses(report, "sparse") == {r: PASS for r in range(1, 6)}, report.cells
    # svm.c has sparse warnings of its own at the base: they are not the series'
    reasons = {c.row: c.reason for c in report.cells if c.check == "sparse"}
    assert "arch/x86/kvm/svm/svm.c" in reasons[3] and reasons[3].startswith("sparse: none new")
