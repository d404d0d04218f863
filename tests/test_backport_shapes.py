"""The stable trees people backport to: 5.15's shape renders, applies and builds at
every patch; 5.10's is refused with the true reason.

The trees are derived from Debian's 6.1 (tests/derived.py): 6.1 already has
5.15's selftest layout and word 15; the derivation gives it 5.15's global
kvm_has_bus_lock_exit and the nested cache of a whole struct vmcb_control_area,
and, for 5.10, takes KVM's bus lock detection away.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from derived import Derived, git_am_applies, shape_5_10, shape_5_15
from kseries.base import bases
from kseries.base.cache import cache_root
from kseries.errors import KseriesError
from kseries.render import series as render

KVM_HOST_H = "arch/x86/include/asm/kvm_host.h"


@pytest.fixture(params=["v2", "merged"])
def series(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def derive(base: bases.Base, root: Path, shape: str) -> bases.Base:
    d = Derived(root, base)
    {"5.15": shape_5_15, "5.10": shape_5_10}[shape](d)
    d.commit()
    from conftest import TEMPLATES
    return bases.resolve(f"{root}@derived", TEMPLATES)


def rendered(b: bases.Base, out: Path, series: str) -> render.RenderedSeries:
    from conftest import KSELFTEST, TEMPLATES
    return render.render(b, TEMPLATES / "series" / series, KSELFTEST, out)


def test_5_15_shape_renders_and_applies(debian_61: bases.Base, tmp_path: Path,
                                        series: str) -> None:
    b = derive(debian_61, tmp_path / "linux-5.15.git", "5.15")
    s = rendered(b, tmp_path / "out", series)
    assert s.facts.kvm.bus_lock_cap == "kvm_has_bus_lock_exit"
    assert s.facts.kvm.cap_declared_in == KVM_HOST_H
    assert s.facts.nested.cached_struct == ""
    assert s.facts.selftest.dir == "x86_64"
    assert s.facts.cpufeature.unnamed == '"" '
    text = "".join(p.read_text() for p in s.files[1:])
    assert "+\t\tkvm_has_bus_lock_exit = true;" in text
    assert "kvm_caps" not in "".join(ln for ln in text.splitlines(True) if ln.startswith("+"))
    if series == "merged":
        # bus_lock_rip beside the cached controls, not in the VMCB's hardware layout
        assert re.search(r"\tstruct vmcb_control_area ctl;\n[ +]\n\+\t/\* The RIP of the last "
                         r"bus lock exit taken in L2\. \*/\n\+\tu64 bus_lock_rip;\n", text)
        assert "svm->nested.bus_lock_rip == vmcb12_rip" in text
        assert "nested.ctl.bus_lock_rip" not in text
    git_am_applies(s, tmp_path)


def test_5_15_backport_notes_come_from_the_probed_facts(debian_61: bases.Base,
                                                       tmp_path: Path) -> None:
    from conftest import KSELFTEST, TEMPLATES
    from kseries.render.manifest import Person
    b = derive(debian_61, tmp_path / "linux-5.15.git", "5.15")
    ada = Person("ada", "Ada Backport", "ada@example.org")
    s = render.render(b, TEMPLATES / "series" / "merged", KSELFTEST, tmp_path / "out",
                      sender=ada, stable="5.15.y")
    p4 = " ".join(s.files[4].read_text().split("\n---\n", 1)[0].split())
    assert "[ Ada Backport: the capability is the global kvm_has_bus_lock_exit on this tree " \
           "(declared in arch/x86/include/asm/kvm_host.h)" in p4
    assert "bus_lock_rip is a field of struct svm_nested_state beside it ]" in p4
    assert p4.endswith("Signed-off-by: Ada Backport <ada@example.org>")
    assert "Subject: [PATCH 5.15.y 4/5]" in p4
    assert "[ Ada Backport:" not in s.files[1].read_text()  # patch 1: nothing adapted


def test_5_10_shape_is_refused_with_the_true_reason(debian_61: bases.Base, tmp_path: Path,
                                                    series: str) -> None:
    b = derive(debian_61, tmp_path / "linux-5.10.git", "5.10")
    with pytest.raises(KseriesError) as err:
        rendered(b, tmp_path / "out", series)
    line = str(err.value)
    assert "\n" not in line
    assert "predates KVM's bus lock detection" in line
    assert "KVM_CAP_X86_BUS_LOCK_EXIT in include/uapi/linux/kvm.h" in line
    assert f"bus_lock_detection_enabled in {KVM_HOST_H}" in line
    assert "5.12" in line and "0x120" not in line


def test_5_10_refusal_is_one_line_from_the_cli(debian_61: bases.Base, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from kseries.cli import main
    derive(debian_61, tmp_path / "linux-5.10.git", "5.10")
    code = main(["render", "--series", "merged", "--base",
                 f"{tmp_path / 'linux-5.10.git'}@derived", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    lines = [ln for ln in err if ln.startswith("kseries:")]
    assert len(lines) == 1, err
    assert "predates KVM's bus lock detection" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2", "merged"])
def test_5_15_shape_applies_and_builds_at_every_patch(debian_61: bases.Base, tmp_path: Path,
                                                      name: str) -> None:
    """`git am` of each patch on a fresh worktree, then the kvm-x86 build at every patch.
    The derived repository lives in the cache under a fixed name, so its base key, and
    with it the kvm-x86 build directory, is the same on every run: warm after the first."""
    from conftest import KSELFTEST, TEMPLATES
    from kseries.check import checklist
    from kseries.check.report import PASS
    b = derive(debian_61, cache_root() / "derived" / "linux-5.15-shape.git", "5.15")
    ctx = checklist.prepare(b, TEMPLATES, TEMPLATES / "series" / name, KSELFTEST, None,
                            tmp_path / "work", profiles=["kvm-x86"])
    report = checklist.run(ctx, ["applies", "build"], default=True)
    for check in ("applies", "build:kvm-x86"):
        got = {c.row: c.status for c in report.cells if c.check == check}
        assert got == {r: PASS for r in range(1, 6)}, (check, report.problems())
