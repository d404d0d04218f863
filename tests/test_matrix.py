"""The build matrix: profiles as data, which apply to a base, and `kseries check`
building every patch in every profile of it.

The fast tests read profiles and Kconfig files (synthetic trees and the real
bases' own Kconfig). The slow one breaks the v2 series once per profile, each
break written so that only that profile's configuration trips on it, and checks
that each profile's column fails on the broken patch with its own error and
nobody else's. The clean series on both bases is in test_build_checks.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import TEMPLATES
from kseries.base import bases
from kseries.build import matrix, profiles
from kseries.check import bisect
from kseries.check.report import FAIL, PASS, SKIP
from kseries.cli import main
from kseries.errors import KseriesError
from kseries.render.manifest import load as load_manifest
from synthetic import make_tree
from test_build_checks import run_checks, statuses

ROOT = Path(__file__).resolve().parents[1]
SIX = ("kvm-x86", "kvm-x86-nosmm", "kvm-x86-xen", "kvm-x86-lockdep", "kvm-x86-nosev", "kvm-i386")


def test_both_series_name_all_six_profiles() -> None:
    for name in ("v2", "merged"):
        assert load_manifest(TEMPLATES / "series" / name).matrix == SIX


def test_knob_profiles_extend_kvm_x86_and_share_its_worktree() -> None:
    base = profiles.load_profile(TEMPLATES, "kvm-x86")
    nosmm = profiles.load_profile(TEMPLATES, "kvm-x86-nosmm")
    assert nosmm.options == {**base.options, "KVM_SMM": "n"}
    assert nosmm.base_target == "defconfig" and nosmm.tree == base.tree == "kvm-x86"
    assert nosmm.per_patch == "series" and base.per_patch == "targets"
    i386 = profiles.load_profile(TEMPLATES, "kvm-i386")
    assert (i386.arch, i386.options["X86_64"], i386.tree) == ("i386", "n", "kvm-x86")
    assert "KVM_AMD_SEV" not in i386.options  # SEV is 64-bit only
    assert base.stamp() != nosmm.stamp() != i386.stamp()
    # the matrix shares objects across configs by preprocessed source; the vm kernel not
    assert {p.ccache for p in (base, nosmm, i386)} == {"preprocessor"}
    assert profiles.load_profile(TEMPLATES, "vm").ccache == "depend"


def write_profile(templates: Path, name: str, text: str) -> None:
    (templates / "profiles" / f"{name}.toml").write_text(text)


def test_bad_profiles_are_one_clear_error(tmp_path: Path) -> None:
    t = tmp_path / "templates"
    shutil.copytree(TEMPLATES, t)
    write_profile(t, "loop", 'extends = "loop"\nbase_target = "defconfig"\n')
    write_profile(t, "typo", 'base_target = "defconfig"\noptoins = {}\n')
    write_profile(t, "orphan", 'extends = "kvm-x87"\n')
    write_profile(t, "how", 'extends = "kvm-x86"\nper_patch = "everything"\n')
    write_profile(t, "cc", 'extends = "kvm-x86"\nccache = "direct"\n')
    for name, words in (("loop", "extends itself"), ("typo", "unknown field 'optoins'"),
                        ("cc", "ccache = 'direct': one of: preprocessor, depend"),
                        ("orphan", "unknown build profile 'kvm-x87' (extended by orphan)"),
                        ("how", "per_patch = 'everything'")):
        with pytest.raises(KseriesError, match=re.escape(words)):
            profiles.load_profile(t, name)


def test_profile_outside_the_matrix_is_refused_before_the_base_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a base that does not exist: the refusal must come first
    code = main(["check", "--base", str(tmp_path / "nowhere"), "--profile", "vm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) <= 2, err
    assert "--profile vm: not in the series' build matrix" in err[0]
    assert "kvm-x86-nosmm" in "\n".join(err)


def test_which_profiles_apply_is_read_off_the_kconfig(tmp_path: Path,
                                                       isolated_cache: Path) -> None:
    kconfig = ("config KVM\n\ttristate \"KVM\"\n\tdepends on X86_LOCAL_APIC\n{extra}\n"
               "config KVM_XEN\n\tbool \"Xen\"\n\tdepends on KVM\n")
    chosen = [profiles.load_profile(TEMPLATES, n) for n in SIX]
    old = make_tree(tmp_path / "old", {"arch/x86/kvm/Kconfig": kconfig.format(extra="")})
    base = bases.git_base(str(old))
    got = {e.profile.name: e.why_not for e in matrix.for_base(base, base.commit, chosen)}
    assert got["kvm-x86-nosmm"] == "the base has no CONFIG_KVM_SMM (the profile needs it)"
    assert got["kvm-x86-nosev"].startswith("the base has no CONFIG_KVM_AMD_SEV")
    assert got["kvm-x86-xen"] == got["kvm-i386"] == got["kvm-x86"] == ""
    # a newer kernel: KVM only for 64-bit
    new = make_tree(tmp_path / "new", {"arch/x86/kvm/Kconfig": kconfig.format(
        extra="\tdepends on X86_64\nconfig KVM_SMM\n\tbool \"SMM\"\n\tdepends on KVM\n")})
    base = bases.git_base(str(new))
    got = {e.profile.name: e.why_not for e in matrix.for_base(base, base.commit, chosen)}
    assert got["kvm-i386"] == "the base's CONFIG_KVM depends on X86_64"
    assert got["kvm-x86-nosmm"] == ""


def test_the_debian_bases_kconfig(debian_612: bases.Base, debian_61: bases.Base) -> None:
    chosen = [profiles.load_profile(TEMPLATES, n) for n in SIX]
    on_612 = matrix.for_base(debian_612, debian_612.commit, chosen)
    assert [e.profile.name for e in on_612 if not e.applies] == []
    on_61 = {e.profile.name: e.why_not for e in matrix.for_base(debian_61, debian_61.commit,
                                                                chosen)}
    # KVM_SMM became a knob in 6.2; 6.1 still builds KVM for 32-bit
    assert on_61 == {**{n: "" for n in SIX},
                     "kvm-x86-nosmm": "the base has no CONFIG_KVM_SMM (the profile needs it)"}


def test_targets_per_profile() -> None:
    x86 = profiles.load_profile(TEMPLATES, "kvm-x86")
    xen = profiles.load_profile(TEMPLATES, "kvm-x86-xen")
    series = ["arch/x86/kvm/svm/svm.o", "arch/x86/kernel/cpu/proc.o"]
    header = ["arch/x86/include/asm/cpufeatures.h"]
    assert bisect.targets_for(x86, header, series) == ["arch/x86/kvm/", "arch/x86/kernel/cpu/"]
    assert bisect.targets_for(xen, header, series) == sorted(series)
    assert bisect.targets_for(xen, ["Documentation/virt/kvm/api.rst"], series) == []


# Each break is in the bus lock exit handler (patch 3 of v2) and trips only one
# profile's configuration. kvm-x86's is contrived (a block only its exact
# configuration compiles); the others are mistakes of the kind each knob exists
# to catch. The marker is what that profile's compiler error must name.
BREAKS = {
    "kvm-x86": ("#if IS_ENABLED(CONFIG_KVM_SMM) && IS_ENABLED(CONFIG_KVM_AMD_SEV) && "
                "!IS_ENABLED(CONFIG_KVM_XEN) && !IS_ENABLED(CONFIG_PROVE_LOCKING) && "
                "IS_ENABLED(CONFIG_X86_64)\n\tkseries_only_in_kvm_x86 = 1;\n#endif\n",  # undeclared
                "kseries_only_in_kvm_x86"),
    # an SMM-only helper outside #ifdef CONFIG_KVM_SMM
    "kvm-x86-nosmm": ("\tif (0)\n\t\tkvm_smm_changed(vcpu, false);\n", "kvm_smm_changed"),
    # a helper only the non-Xen branch calls: unused (and -Werror) with KVM_XEN=y
    "kvm-x86-xen": ("#ifndef CONFIG_KVM_XEN\n\tkseries_no_xen_note(vcpu);\n#endif\n",
                    "kseries_no_xen_note"),
    # lockdep_assert_held() on something that is not a lock
    "kvm-x86-lockdep": ("\tlockdep_assert_held(&svm->vmcb->control.bus_lock_counter);\n",
                        "dep_map"),
    # a SEV-only function outside #ifdef CONFIG_KVM_AMD_SEV, in 64-bit-only code
    # (a 32-bit kernel has no SEV at all, so kvm-i386 would trip on it too)
    "kvm-x86-nosev": ("#ifdef CONFIG_X86_64\n\tif (0)\n\t\tsev_guest_memory_reclaimed(vcpu->kvm);\n"
                      "#endif\n", "sev_guest_memory_reclaimed"),
    # a register only 64-bit kernels have
    "kvm-i386": ("\t(void)kvm_register_read_raw(vcpu, VCPU_REGS_R8);\n", "VCPU_REGS_R8"),
}
HELPER = "static void kseries_no_xen_note(struct kvm_vcpu *vcpu)\n{\n}\n\n"
ANCHOR = ("static int bus_lock_exit(struct kvm_vcpu *vcpu)\n{\n"
          "\tstruct vcpu_svm *svm = to_svm(vcpu);\n\n")


def broken_everywhere_once(tmp: Path) -> Path:
    copy = tmp / "templates"
    shutil.copytree(TEMPLATES, copy)
    path = copy / "series" / "v2" / "changes" / "svm-buslock.toml.j2"
    text = path.read_text()
    assert ANCHOR in text
    body = "".join(code for code, _ in BREAKS.values())
    text = text.replace(ANCHOR, HELPER + ANCHOR + body, 1)
    path.write_text(text)
    return copy


@pytest.mark.slow
def test_each_profile_catches_its_own_break(debian_612: bases.Base, tmp_path: Path) -> None:
    t = broken_everywhere_once(tmp_path)
    report = run_checks(debian_612, t, tmp_path, ["applies", "build"])
    assert report.checks == ["applies", *(bisect.column(p) for p in SIX)]
    for profile, (_, marker) in BREAKS.items():
        got = statuses(report, bisect.column(profile))
        assert got == {1: PASS, 2: PASS, 3: FAIL, 4: PASS, 5: PASS}, (profile, got)
        cell = report.cell(bisect.column(profile), 3)
        assert cell is not None
        text = "\n".join((cell.reason, *cell.details))
        assert f"with {profile}:" in cell.reason
        assert marker in text, (profile, text)
        others = [m for p, (_, m) in BREAKS.items() if p != profile and m in text]
        assert others == [], (profile, others, text)
        log = cell.details[-1].removeprefix("log: ")
        assert Path(log).is_file() and f"/{profile}/" in log


@pytest.mark.slow
def test_one_profile_narrows_the_matrix(debian_612: bases.Base, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--base", "debian:6.12", "--only", "applies,build",
                    "--profile", "kvm-x86-xen", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0, out
    header = next(line for line in out.splitlines() if "applies" in line)
    assert header.split() == ["applies", "build:kvm-x86-xen"]
    data = json.loads((tmp_path / "r.json").read_text())
    assert [p["name"] for p in data["built"]["profiles"]] == ["kvm-x86-xen"]
    assert data["built"]["profiles"][0]["options"]["KVM_XEN"] == "y"
    assert {c["check"] for c in data["cells"]} == {"applies", "build:kvm-x86-xen"}
    assert data["checks"]["build:kvm-x86-xen"]["status"] == PASS
    assert SKIP not in {c["status"] for c in data["cells"]}
