"""Every probe, on synthetic trees and on shapes derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.errors import KseriesError
from kseries.render import csource, probe
from synthetic import FILES, DirReader


class Files:
    """A TreeReader over the synthetic files with overrides."""

    def __init__(self, **overrides: str | None) -> None:
        self.files = dict(FILES)
        self.files.update({k.replace("__", "/"): v for k, v in overrides.items()})

    def read(self, path: str) -> str | None:
        return self.files.get(path)


def with_file(path: str, text: str | None) -> Files:
    f = Files()
    f.files[path] = text
    return f


def test_selftest_x86_64_layout() -> None:
    st = probe.probe_selftest(Files())
    assert (st.dir, st.var) == ("x86_64", "TEST_GEN_PROGS_x86_64")
    assert st.makefile == "tools/testing/selftests/kvm/Makefile"
    assert st.before == "TEST_GEN_PROGS_x86_64 += x86_64/kvm_clock_test"
    assert st.path.endswith("/x86_64/kvm_buslock_test.c")


def test_selftest_x86_layout_with_makefile_kvm() -> None:
    mk = FILES["tools/testing/selftests/kvm/Makefile"].replace("x86_64", "x86")
    f = with_file("tools/testing/selftests/kvm/Makefile", "include Makefile.kvm\n")
    f.files["tools/testing/selftests/kvm/Makefile.kvm"] = mk
    st = probe.probe_selftest(f)
    assert (st.dir, st.var) == ("x86", "TEST_GEN_PROGS_x86")
    assert st.makefile.endswith("/Makefile.kvm")
    assert st.path == "tools/testing/selftests/kvm/x86/kvm_buslock_test.c"


def test_selftest_appends_when_no_later_entry() -> None:
    mk = "TEST_GEN_PROGS_x86_64 = x86_64/amx_test\nTEST_GEN_PROGS_x86_64 += x86_64/cpuid_test\n"
    st = probe.probe_selftest(with_file("tools/testing/selftests/kvm/Makefile", mk))
    assert st.before == ""
    assert st.after == "TEST_GEN_PROGS_x86_64 += x86_64/cpuid_test"


def test_selftest_missing_list_is_an_error() -> None:
    with pytest.raises(KseriesError, match="x86 selftest list"):
        probe.probe_selftest(with_file("tools/testing/selftests/kvm/Makefile", "all:\n"))


def test_cpufeature_neighbour_is_the_highest_bit_below_29() -> None:
    cf = probe.probe_cpufeature(FILES["arch/x86/include/asm/cpufeatures.h"])
    assert "X86_FEATURE_SVME_ADDR_CHK" in cf.after
    assert cf.value == "(15*32+29)"


def test_cpufeature_keeps_numeric_order_with_other_bits() -> None:
    text = FILES["arch/x86/include/asm/cpufeatures.h"].replace(
        "#define X86_FEATURE_SVME_ADDR_CHK",
        "#define X86_FEATURE_IDLE_HLT\t\t(15*32+30) /* \"idle_hlt\" */\n"
        "#define X86_FEATURE_SVME_ADDR_CHK",
    )
    cf = probe.probe_cpufeature(text)
    assert "SVME_ADDR_CHK" in cf.after  # 28 is the closest below 29, not 30


def test_cpufeature_taken_bit_is_an_error() -> None:
    text = FILES["arch/x86/include/asm/cpufeatures.h"] + (
        "#define X86_FEATURE_OTHER\t(15*32+29) /* \"other\" */\n"
    )
    with pytest.raises(KseriesError, match="taken by X86_FEATURE_OTHER"):
        probe.probe_cpufeature(text)


def test_intercept_follows_bit_164() -> None:
    ic = probe.probe_intercept(FILES["arch/x86/include/asm/svm.h"])
    assert (ic.after, ic.value, ic.explicit) == ("INTERCEPT_TLBSYNC", 165, False)


def test_intercept_with_gap_needs_explicit_value() -> None:
    text = FILES["arch/x86/include/asm/svm.h"].replace(
        "\tINTERCEPT_MCOMMIT,\n\tINTERCEPT_TLBSYNC,\n", "")
    ic = probe.probe_intercept(text)
    assert (ic.after, ic.explicit) == ("INTERCEPT_INVPCID", True)


def test_intercept_with_explicit_later_entry() -> None:
    text = FILES["arch/x86/include/asm/svm.h"].replace(
        "\tINTERCEPT_TLBSYNC,\n", "\tINTERCEPT_TLBSYNC,\n\tINTERCEPT_IDLE_HLT = 166,\n")
    ic = probe.probe_intercept(text)
    assert (ic.after, ic.explicit) == ("INTERCEPT_TLBSYNC", False)


def test_vmcb_split_keeps_offsets() -> None:
    v = probe.probe_vmcb(FILES["arch/x86/include/asm/svm.h"])
    # vmsa_pa ends at 0x108 + 8 = 0x110; the counter goes at 0x120.
    assert (v.name, v.before, v.after, v.tail_name) == ("reserved_8", 16, 702, "reserved_9")
    assert v.size == 0x3E0
    assert v.before + 2 + v.after == 720


def test_vmcb_with_newer_fields_renumbers_later_reserved() -> None:
    text = FILES["arch/x86/include/asm/svm.h"].replace(
        "\tu8 reserved_8[720];\n",
        "\tu8 reserved_8[40];\n\tu64 allowed_sev_features;\t/* Offset 0x138 */\n"
        "\tu64 guest_sev_features;\t\t/* Offset 0x140 */\n\tu8 reserved_9[664];\n",
    )
    v = probe.probe_vmcb(text)
    assert (v.before, v.after, v.tail_name) == (16, 22, "reserved_9")
    assert v.renames == (("\tu8 reserved_9[664];", "\tu8 reserved_10[664];"),)
    assert v.size == 0x3E0


def test_vmcb_counter_over_a_real_field_is_an_error() -> None:
    text = FILES["arch/x86/include/asm/svm.h"].replace(
        "\tu8 reserved_8[720];\n", "\tu8 reserved_8[16];\n\tu64 other;\n\tu8 reserved_9[696];\n")
    with pytest.raises(KseriesError, match="reserved u8 array over offset 0x120"):
        probe.probe_vmcb(text)


def test_exits_neighbours() -> None:
    ex = probe.probe_exits(FILES["arch/x86/include/uapi/asm/svm.h"],
                           FILES["arch/x86/kvm/svm/svm.c"])
    assert (ex.code_after, ex.table_after, ex.handler_after) == ("SVM_EXIT_INVPCID",) * 3


def test_exits_table_without_the_neighbour_uses_the_nearest_lower() -> None:
    uapi = FILES["arch/x86/include/uapi/asm/svm.h"].replace(
        "#define SVM_EXIT_INVPCID       0x0a2\n",
        "#define SVM_EXIT_RDPRU 0x08e\n#define SVM_EXIT_INVPCID       0x0a2\n"
        "#define SVM_EXIT_IDLE_HLT 0x0a6\n",
    ).replace('\t{ SVM_EXIT_INVPCID,     "invpcid" }, \\\n', '\t{ SVM_EXIT_RDPRU, "rdpru" }, \\\n')
    ex = probe.probe_exits(uapi, FILES["arch/x86/kvm/svm/svm.c"])
    assert ex.code_after == "SVM_EXIT_INVPCID"
    assert ex.table_after == "SVM_EXIT_RDPRU"


def test_kvm_helpers_6_12_and_6_1_shape() -> None:
    k = probe.probe_kvm(FILES["arch/x86/kvm/x86.h"], FILES["arch/x86/include/asm/kvm_host.h"],
                        FILES["arch/x86/kvm/cpuid.h"], FILES["arch/x86/kvm/svm/svm.h"])
    assert (k.bus_lock_cap, k.guest_has) == ("kvm_caps.has_bus_lock_exit", "guest_cpuid_has")
    assert (k.cap_declared_in, k.encrypted_guests) == ("arch/x86/kvm/x86.h", "SEV-ES")


def test_kvm_helpers_older_and_newer_shapes() -> None:
    kvm_host = FILES["arch/x86/include/asm/kvm_host.h"]
    svm_h = FILES["arch/x86/kvm/svm/svm.h"]
    # 5.15: a global, declared in asm/kvm_host.h; x86.h has no struct kvm_caps
    old = probe.probe_kvm("", kvm_host + "extern bool kvm_has_bus_lock_exit;\n",
                          "static inline bool guest_cpuid_has(struct kvm_vcpu *v, int f)\n",
                          svm_h)
    assert (old.bus_lock_cap, old.cap_declared_in) == ("kvm_has_bus_lock_exit",
                                                       "arch/x86/include/asm/kvm_host.h")
    new = probe.probe_kvm(FILES["arch/x86/kvm/x86.h"], kvm_host,
                          "static __always_inline bool guest_cpu_cap_has(struct kvm_vcpu *v,\n",
                          svm_h + "static __always_inline bool sev_snp_guest(struct kvm *kvm)\n")
    assert (new.guest_has, new.encrypted_guests) == ("guest_cpu_cap_has", "SEV-ES or SNP")
    with pytest.raises(KseriesError, match=r"neither kvm_caps\.has_bus_lock_exit nor a global"):
        probe.probe_kvm("struct kvm_caps {\n};\n", kvm_host, FILES["arch/x86/kvm/cpuid.h"],
                        svm_h)


def test_a_base_without_bus_lock_detection_is_refused_first() -> None:
    f = Files()
    f.files["include/uapi/linux/kvm.h"] = ""
    f.files["arch/x86/kvm/x86.h"] = "struct kvm_caps {\n};\n"
    with pytest.raises(KseriesError, match=r"predates KVM's bus lock detection: it has no "
                       r"KVM_CAP_X86_BUS_LOCK_EXIT in include/uapi/linux/kvm\.h; both came "
                       r"with Linux 5\.12"):
        probe.probe(f)


def test_doc_section_found_by_capability_name() -> None:
    d = probe.probe_doc(FILES["Documentation/virt/kvm/api.rst"])
    assert d.section == "7.22"
    assert d.last_line.startswith("Note! Check")
    renumbered = FILES["Documentation/virt/kvm/api.rst"].replace("7.22", "8.40")
    assert probe.probe_doc(renumbered).section == "8.40"
    with pytest.raises(KseriesError, match="KVM_CAP_X86_BUS_LOCK_EXIT section"):
        probe.probe_doc("7.1 KVM_CAP_OTHER\n-----------\n\ntext\n")


def test_present_parts_name_what_the_base_has() -> None:
    f = Files()
    assert probe.present_parts(f) == ()
    f.files["arch/x86/include/uapi/asm/svm.h"] += "#define SVM_EXIT_BUS_LOCK 0x0a5\n"
    f.files["arch/x86/include/asm/cpufeatures.h"] += (
        "#define X86_FEATURE_BUS_LOCK_THRESHOLD\t(15*32+29)\n")
    parts = probe.present_parts(f)
    assert len(parts) == 2
    assert any("CPUID bit" in p for p in parts) and any("exit code" in p for p in parts)


def test_missing_file_names_it(tmp_path: Path) -> None:
    f = with_file("arch/x86/kvm/x86.h", None)
    with pytest.raises(KseriesError, match=r"arch/x86/kvm/x86\.h: cannot find the file"):
        probe.probe(f)


def test_probe_reads_a_directory(tmp_path: Path) -> None:
    for path, text in FILES.items():
        p = tmp_path / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    facts = probe.probe(DirReader(tmp_path))
    assert facts.vmcb.tail_name == "reserved_9"


def test_csource_evaluate_and_enum() -> None:
    assert csource.evaluate("15 - MAX", {"MAX": 6}) == 9
    assert csource.evaluate("(1 << 4) | 0x3UL", {}) == 19
    with pytest.raises(csource.ParseError):
        csource.evaluate("sizeof(int)", {})
    e = csource.enum_entries("A = 3, B, /* c */ C = B + 2,")
    assert [(x.name, x.value, x.explicit) for x in e] == [("A", 3, True), ("B", 4, False),
                                                           ("C", 6, True)]
