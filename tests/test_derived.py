"""Shapes of newer bases, on trees derived from the real 6.12 base.

Only 6.1 and 6.12 are on disk. Newer kernels differ in ways the series must
adapt to: the selftests moved to x86/ with Makefile.kvm, the VMCB gained fields
near 0x120, word 15 and the intercept and exit tables gained neighbours, and
api.rst renumbered its sections. Each test derives such a tree from 6.12 (as a
commit in a repository that borrows 6.12's objects), renders against it and
checks the series adapted, and that it applies there with `git am`; every
test runs for both series (v2 and merged), the slow build test for v2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from derived import SELFTESTS, Derived, git_am_applies
from kseries.base import bases
from kseries.render import series as render


@pytest.fixture
def derived(debian_612: bases.Base, tmp_path: Path) -> Derived:
    return Derived(tmp_path / "derived.git", debian_612)


@pytest.fixture(params=["v2", "merged"])
def series(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def render_derived(d: Derived, tmp_path: Path, series: str) -> tuple[render.RenderedSeries, str]:
    from conftest import KSELFTEST, TEMPLATES
    d.commit()
    b = bases.resolve(f"{d.root}@derived", TEMPLATES)
    s = render.render(b, TEMPLATES / "series" / series, KSELFTEST, tmp_path / "out")
    text = "".join(p.read_text() for p in s.files[1:])
    return s, text


def test_selftests_in_x86_with_makefile_kvm(derived: Derived, tmp_path: Path, series: str) -> None:
    derived.move_dir(f"{SELFTESTS}/x86_64/", f"{SELFTESTS}/x86/")
    mk = derived.read(f"{SELFTESTS}/Makefile")
    derived.write(f"{SELFTESTS}/Makefile.kvm",
                  mk.replace("TEST_GEN_PROGS_x86_64", "TEST_GEN_PROGS_x86").replace(
                      "x86_64/", "x86/"))
    derived.write(f"{SELFTESTS}/Makefile", "include Makefile.kvm\n")
    s, text = render_derived(derived, tmp_path, series)
    assert s.facts.selftest.dir == "x86"
    assert f"+++ b/{SELFTESTS}/Makefile.kvm" in text
    assert "+TEST_GEN_PROGS_x86 += x86/kvm_buslock_test" in text
    assert f"create mode 100644 {SELFTESTS}/x86/kvm_buslock_test.c" in text
    git_am_applies(s, tmp_path)


def test_vmcb_with_sev_features_near_0x120(derived: Derived, tmp_path: Path, series: str) -> None:
    derived.edit("arch/x86/include/asm/svm.h", "\tu8 reserved_8[720];\n",
                 "\tu8 reserved_8[40];\n"
                 "\tu64 allowed_sev_features;\t/* Offset 0x138 */\n"
                 "\tu64 guest_sev_features;\t\t/* Offset 0x140 */\n"
                 "\tu8 reserved_9[664];\n")
    s, text = render_derived(derived, tmp_path, series)
    assert "-\tu8 reserved_8[40];" in text
    assert "+\tu8 reserved_8[16];\n+\tu16 bus_lock_counter;\t\t/* Offset 0x120 */\n" \
           "+\tu8 reserved_9[22];" in text
    assert "-\tu8 reserved_9[664];\n+\tu8 reserved_10[664];" in text
    git_am_applies(s, tmp_path)


def test_newer_neighbours_in_word_15_intercepts_and_exits(derived: Derived,
                                                          tmp_path: Path, series: str) -> None:
    derived.edit("arch/x86/include/asm/cpufeatures.h",
                 "#define X86_FEATURE_SVME_ADDR_CHK\t(15*32+28) /* SVME addr check */\n",
                 "#define X86_FEATURE_SVME_ADDR_CHK\t(15*32+28) /* SVME addr check */\n"
                 "#define X86_FEATURE_IDLE_HLT\t\t(15*32+30) /* IDLE HLT intercept */\n")
    derived.edit("arch/x86/include/asm/svm.h", "\tINTERCEPT_TLBSYNC,\n",
                 "\tINTERCEPT_TLBSYNC,\n\tINTERCEPT_IDLE_HLT = 166,\n")
    derived.edit("arch/x86/include/uapi/asm/svm.h",
                 "#define SVM_EXIT_INVPCID       0x0a2\n",
                 "#define SVM_EXIT_INVPCID       0x0a2\n#define SVM_EXIT_IDLE_HLT      0x0a6\n")
    s, text = render_derived(derived, tmp_path, series)
    p2 = s.files[2].read_text()
    # numeric order: after bit 28, before bit 30
    assert re.search(r" #define X86_FEATURE_SVME_ADDR_CHK.*\n\+#define "
                     r"X86_(?:VIRT_)?FEATURE_BUS_LOCK_THRESHOLD.*\n #define X86_FEATURE_IDLE_HLT",
                     p2)
    assert re.search(r" \tINTERCEPT_TLBSYNC,\n\+\tINTERCEPT_BUSLOCK,\n \tINTERCEPT_IDLE_HLT = 166,",
                     text)
    assert re.search(r" #define SVM_EXIT_INVPCID .*\n\+#define SVM_EXIT_BUS_LOCK\s+0x0a5\n"
                     r" #define SVM_EXIT_IDLE_HLT", text)
    git_am_applies(s, tmp_path)


def test_renumbered_api_section(derived: Derived, tmp_path: Path, series: str) -> None:
    derived.edit("Documentation/virt/kvm/api.rst", "7.22 KVM_CAP_X86_BUS_LOCK_EXIT",
                 "7.31 KVM_CAP_X86_BUS_LOCK_EXIT")
    s, _ = render_derived(derived, tmp_path, series)
    assert s.facts.doc.section == "7.31"
    api = next(f.read_text() for f in s.files[1:] if "Documentation/virt/kvm/api.rst" in
               f.read_text())
    assert re.search(r"^\+.*fault-like", api, re.M)
    git_am_applies(s, tmp_path)


def test_base_with_cui_linear_rip_is_refused(derived: Derived, tmp_path: Path,
                                             series: str) -> None:
    # A newer base already has patch 1 of the merged design.
    derived.edit("arch/x86/include/asm/kvm_host.h",
                 "\tint (*complete_userspace_io)(struct kvm_vcpu *vcpu);\n",
                 "\tint (*complete_userspace_io)(struct kvm_vcpu *vcpu);\n"
                 "\tunsigned long cui_linear_rip;\n")
    from kseries.errors import KseriesError
    with pytest.raises(KseriesError, match=r"already contains the feature: common user-exit "
                                           r"RIP \(cui_linear_rip in asm/kvm_host.h\)"):
        render_derived(derived, tmp_path, series)


def test_linear_rip_helpers_declared_in_x86_h(derived: Derived, tmp_path: Path,
                                              series: str) -> None:
    decls = ("unsigned long kvm_get_linear_rip(struct kvm_vcpu *vcpu);\n"
             "bool kvm_is_linear_rip(struct kvm_vcpu *vcpu, unsigned long linear_rip);\n")
    derived.edit("arch/x86/include/asm/kvm_host.h", decls, "")
    derived.write("arch/x86/kvm/x86.h", derived.read("arch/x86/kvm/x86.h") + decls)
    s, _ = render_derived(derived, tmp_path, series)
    assert s.facts.rip.declared_in == "arch/x86/kvm/x86.h"
    git_am_applies(s, tmp_path)


def test_more_pio_paths_and_no_selftest_vendor_helper(derived: Derived, tmp_path: Path,
                                                      series: str) -> None:
    # A base whose PIO code reads the RIP in one more place, and whose selftest
    # library has no host_cpu_is_amd: both are adapted to, not assumed.
    x86 = "arch/x86/kvm/x86.c"
    derived.edit(x86, "static int complete_fast_pio_in(struct kvm_vcpu *vcpu)\n{\n",
                 "static int complete_fast_pio_in(struct kvm_vcpu *vcpu)\n{\n"
                 "\ttrace_kvm_pio_rip(vcpu->arch.pio.linear_rip);\n")
    proc = f"{SELFTESTS}/include/x86_64/processor.h"
    derived.edit(proc, "extern bool host_cpu_is_amd;\n", "")
    s, text = render_derived(derived, tmp_path, series)
    assert s.facts.selftest.amd_host == ""
    assert [f for f, _ in s.facts.rip.uses].count("complete_fast_pio_in") == 2
    if series == "merged":
        assert "+\ttrace_kvm_pio_rip(vcpu->arch.cui_linear_rip);" in text
        assert "+\tif (unlikely(!kvm_is_linear_rip(vcpu, vcpu->arch.cui_linear_rip))) {" in text
        assert '"AuthenticAMD"' in text  # the test reads the vendor string itself
    git_am_applies(s, tmp_path)


@pytest.mark.slow
def test_a_newer_shaped_base_applies_and_builds_at_every_patch(derived: Derived,
                                                              tmp_path: Path) -> None:
    """One tree with the newer shapes above that kbuild compiles, checked like a real base:
    `git am` of each patch on a fresh worktree of it, then the kvm-x86 build at every patch,
    in a build directory of its own. v2 only: the edits change headers all of KVM
    includes, so each series costs a cold KVM build at every header patch; merged's
    adaptation to these shapes is rendered and applied by the tests above, and it is
    built on both real bases (test_build_checks)."""
    from conftest import KSELFTEST, TEMPLATES
    from kseries.check import checklist
    from kseries.check.report import PASS
    derived.edit("arch/x86/include/asm/svm.h", "\tu8 reserved_8[720];\n",
                 "\tu8 reserved_8[40];\n"
                 "\tu64 allowed_sev_features;\t/* Offset 0x138 */\n"
                 "\tu64 guest_sev_features;\t\t/* Offset 0x140 */\n"
                 "\tu8 reserved_9[664];\n")
    derived.edit("arch/x86/include/asm/svm.h", "\tINTERCEPT_TLBSYNC,\n",
                 "\tINTERCEPT_TLBSYNC,\n\tINTERCEPT_IDLE_HLT = 166,\n")
    derived.edit("arch/x86/include/asm/cpufeatures.h",
                 "#define X86_FEATURE_SVME_ADDR_CHK\t(15*32+28) /* SVME addr check */\n",
                 "#define X86_FEATURE_SVME_ADDR_CHK\t(15*32+28) /* SVME addr check */\n"
                 "#define X86_FEATURE_IDLE_HLT\t\t(15*32+30) /* IDLE HLT intercept */\n")
    derived.edit("arch/x86/include/uapi/asm/svm.h",
                 "#define SVM_EXIT_INVPCID       0x0a2\n",
                 "#define SVM_EXIT_INVPCID       0x0a2\n#define SVM_EXIT_IDLE_HLT      0x0a6\n")
    decls = ("unsigned long kvm_get_linear_rip(struct kvm_vcpu *vcpu);\n"
             "bool kvm_is_linear_rip(struct kvm_vcpu *vcpu, unsigned long linear_rip);\n")
    derived.edit("arch/x86/include/asm/kvm_host.h", decls, "")
    derived.write("arch/x86/kvm/x86.h", derived.read("arch/x86/kvm/x86.h") + decls)
    derived.commit()
    b = bases.resolve(f"{derived.root}@derived", TEMPLATES)
    ctx = checklist.prepare(b, TEMPLATES, TEMPLATES / "series" / "v2", KSELFTEST, None,
                            tmp_path / "work", profiles=["kvm-x86"])
    report = checklist.run(ctx, ["applies", "build"], default=True)
    for check in ("applies", "build:kvm-x86"):
        got = {c.row: c.status for c in report.cells if c.check == check}
        assert got == {r: PASS for r in range(1, 6)}, (check, report.problems())
