"""KTAP parsing (as kselftest and our run-tests write it) and emitting."""

from __future__ import annotations

import pytest

from kseries.errors import KseriesError
from kseries.run import ktap
from kseries.run.ktap import Status

CONSOLE = """\
[    1.100000] random: crng init done
KTAP version 1
1..4
# Random seed: 0x6b8b4567
ok 1 svm_vmcall_test
[    1.256054] kvm_amd: kvm [64]: vcpu0, guest rIP: 0xfff0 Unhandled WRMSR(0x1d9) = 0x0
# ==== Test Assertion Failure ====
#   x86_64/smm_test.c:123: stage == 8
not ok 2 smm_test # exit code 254
ok 3 kvm_buslock_test # SKIP Requirement not met: kvm_cpu_has(X86_FEATURE_BUS_LOCK_THRESHOLD)
not ok 4 slow_test # TIMEOUT killed after 120s
"""


def test_parse_kselftest_output_among_kernel_messages() -> None:
    doc = ktap.parse(CONSOLE, strict=True)
    assert doc.plan == 4
    by = doc.by_name()
    assert by["svm_vmcall_test"].status is Status.PASS
    assert by["svm_vmcall_test"].diagnostics == ["Random seed: 0x6b8b4567"]
    smm = by["smm_test"]
    assert smm.status is Status.FAIL and smm.reason == "exit code 254"
    assert smm.diagnostics[1] == "  x86_64/smm_test.c:123: stage == 8"
    skip = by["kvm_buslock_test"]
    assert skip.status is Status.SKIP and skip.directive == "SKIP"
    assert skip.reason.startswith("Requirement not met")
    assert by["slow_test"].status is Status.ERROR


def test_nested_subtests_and_tap13_header() -> None:
    text = """TAP version 13
1..1
    KTAP version 1
    1..2
    ok 1 l1
    not ok 2 l2 # SKIP no nested SVM
ok 1 kvm_buslock_test
"""
    doc = ktap.parse(text, strict=True)
    (top,) = doc.results
    assert [s.name for s in top.subtests] == ["l1", "l2"]
    assert top.subtests[1].status is Status.SKIP


def test_emit_round_trips() -> None:
    results = [
        ktap.TestResult(0, "a test", True),
        ktap.TestResult(0, "b", True, "SKIP", "the CPU lacks the feature", ["why: cpuid"]),
        ktap.TestResult(0, "host", False, "", "expected PASS, got SKIP",
                        subtests=[ktap.TestResult(0, "inner", False, "ERROR", "hung")]),
    ]
    text = ktap.emit(results)
    assert text.startswith("KTAP version 1\n1..3\n")
    assert "ok 1 a_test\n" in text
    assert "    not ok 1 inner # ERROR hung\n" in text
    doc = ktap.parse(text, strict=True)
    assert [r.status for r in doc.results] == [Status.PASS, Status.SKIP, Status.FAIL]
    assert doc.results[1].diagnostics == ["why: cpuid"]
    assert doc.results[2].subtests[0].status is Status.ERROR
    assert doc.results[2].reason == "expected PASS, got SKIP"


@pytest.mark.parametrize("text, message", [
    ("1..1\nok 1 a\n", "no 'KTAP version 1' header"),
    ("KTAP version 1\nok 1 a\n", "no plan"),
    ("KTAP version 1\n1..2\nok 1 a\n", "plan says 2 tests, found 1"),
    ("KTAP version 1\n1..2\nok 1 a\nok 3 b\n", "numbered 3, expected 2"),
])
def test_strict_parse_rejects_malformed_ktap(text: str, message: str) -> None:
    with pytest.raises(KseriesError, match=message):
        ktap.parse(text, strict=True)
    ktap.parse(text)  # lenient parsing still returns what it found


def test_todo_and_xfail_are_not_failures() -> None:
    doc = ktap.parse("KTAP version 1\n1..2\nnot ok 1 a # TODO later\nnot ok 2 b # XFAIL known\n")
    assert [r.status for r in doc.results] == [Status.PASS, Status.PASS]


def test_strip_console_noise() -> None:
    assert ktap.strip_console_noise("[    0.1] x\nok 1 a\n[12345.000001] y") == "ok 1 a"
