"""Small synthetic kernel trees for fast unit tests.

Each file holds just the shapes the probes and edits read, written here in the
kernel's style. ``make_tree`` writes them (with overrides) as a git repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

FILES: dict[str, str] = {
    "Makefile": "VERSION = 6\nPATCHLEVEL = 99\n",
    "Kbuild": "obj-y += arch/\n",
    "arch/x86/Kconfig": "config X86\n\tdef_bool y\n",
    "scripts/checkpatch.pl": "#!/usr/bin/perl\nexit 0;\n",
    "arch/x86/include/asm/cpufeature.h": """\
#ifndef _ASM_X86_CPUFEATURE_H
#define _ASM_X86_CPUFEATURE_H

extern const char * const x86_cap_flags[NCAPINTS*32];
extern const char * const x86_bug_flags[NBUGINTS*32];

#endif
""",
    "arch/x86/kernel/cpu/mkcapflags.sh": """\
#!/bin/sh
(
	dump_array "x86_cap_flags" "NCAPINTS*32" "X86_FEATURE_" "" $2
	echo ""

	dump_array "x86_bug_flags" "NBUGINTS*32" "X86_BUG_" "NCAPINTS*32" $2
	echo ""
) > $OUT
""",
    "arch/x86/kernel/cpu/proc.c": """\
static int show_cpuinfo(struct seq_file *m, void *v)
{
	seq_puts(m, "flags\\t\\t:");
	for (i = 0; i < 32*NCAPINTS; i++)
		if (cpu_has(c, i) && x86_cap_flags[i] != NULL)
			seq_printf(m, " %s", x86_cap_flags[i]);

	seq_puts(m, "\\nbugs\\t\\t:");
	return 0;
}
""",
    "arch/x86/include/asm/cpufeatures.h": """\
/* AMD SVM Feature Identification, CPUID level 0x8000000a (EDX), word 15 */
#define X86_FEATURE_NPT			(15*32+ 0) /* "npt" Nested Page Table support */
#define X86_FEATURE_VNMI		(15*32+25) /* "vnmi" Virtual NMI */
#define X86_FEATURE_SVME_ADDR_CHK	(15*32+28) /* SVME addr check */

/* word 16 */
#define X86_FEATURE_UMIP		(16*32+ 2) /* "umip" User Mode Instruction Protection */
""",
    "arch/x86/include/asm/svm.h": """\
enum intercept_words {
	INTERCEPT_CR = 0,
	INTERCEPT_DR,
	INTERCEPT_EXCEPTION,
	INTERCEPT_WORD3,
	INTERCEPT_WORD4,
	INTERCEPT_WORD5,
	MAX_INTERCEPT,
};

enum {
	/* Byte offset 010h (word 4) */
	INTERCEPT_VMRUN = 128,
	INTERCEPT_VMMCALL,
	/* Byte offset 014h (word 5) */
	INTERCEPT_INVLPGB = 160,
	INTERCEPT_INVLPGB_ILLEGAL,
	INTERCEPT_INVPCID,
	INTERCEPT_MCOMMIT,
	INTERCEPT_TLBSYNC,
};

struct __attribute__ ((__packed__)) vmcb_control_area {
	u32 intercepts[MAX_INTERCEPT];
	u32 reserved_1[15 - MAX_INTERCEPT];
	u16 pause_filter_thresh;
	u16 pause_filter_count;
	u8 reserved_2[200];
	u64 vmsa_pa;		/* Used for an SEV-ES guest */
	u8 reserved_8[720];
	union {
		u8 reserved_sw[32];
	};
};
""",
    "arch/x86/include/uapi/asm/svm.h": """\
#define SVM_EXIT_INVPCID       0x0a2
#define SVM_EXIT_NPF           0x400

#define SVM_EXIT_REASONS \\
	{ SVM_EXIT_INVPCID,     "invpcid" }, \\
	{ SVM_EXIT_NPF,         "npf" }
""",
    "arch/x86/kvm/x86.h": "struct kvm_caps {\n\tbool has_bus_lock_exit;\n};\n",
    "arch/x86/include/asm/kvm_host.h": """\
struct kvm_pio_request {
	unsigned long linear_rip;
	unsigned long count;
};

struct kvm_vcpu_arch {
	int (*complete_userspace_io)(struct kvm_vcpu *vcpu);
	struct kvm_pio_request pio;
};

struct kvm_arch {
	bool bus_lock_detection_enabled;
};

unsigned long kvm_get_linear_rip(struct kvm_vcpu *vcpu);
bool kvm_is_linear_rip(struct kvm_vcpu *vcpu, unsigned long linear_rip);
""",
    "include/uapi/linux/kvm.h": "#define KVM_CAP_X86_BUS_LOCK_EXIT 193\n",
    "arch/x86/kvm/x86.c": """\
static int complete_fast_pio_out(struct kvm_vcpu *vcpu)
{
	if (unlikely(!kvm_is_linear_rip(vcpu, vcpu->arch.pio.linear_rip)))
		return 1;
	return kvm_skip_emulated_instruction(vcpu);
}

static int kvm_fast_pio_out(struct kvm_vcpu *vcpu, int size,
			    unsigned short port)
{
	vcpu->arch.pio.linear_rip = kvm_get_linear_rip(vcpu);
	vcpu->arch.complete_userspace_io = complete_fast_pio_out;
	return 0;
}
""",
    "arch/x86/kvm/svm/svm.h": """\
struct vmcb_ctrl_area_cached {
	u32 intercepts[MAX_INTERCEPT];
	u64 virt_ext;
	u32 clean;
};

static __always_inline bool sev_es_guest(struct kvm *kvm)
{
	return false;
}
""",
    "arch/x86/kvm/cpuid.h": (
        "static __always_inline bool guest_cpuid_has(struct kvm_vcpu *vcpu,\n"
        "\t\t\t\t\t    unsigned int x86_feature)\n{\n}\n"
    ),
    "arch/x86/kvm/svm/svm.c": """\
static void init_vmcb(struct kvm_vcpu *vcpu)
{
	svm_set_intercept(svm, INTERCEPT_RSM);
}

static int (*const svm_exit_handlers[])(struct kvm_vcpu *vcpu) = {
	[SVM_EXIT_INVPCID]                      = invpcid_interception,
	[SVM_EXIT_NPF]				= npf_interception,
};

static __init void svm_set_cpu_caps(void)
{
	kvm_caps.supported_xss = 0;
}
""",
    "arch/x86/kvm/svm/nested.c": """\
void __nested_copy_vmcb_control_to_cache(struct kvm_vcpu *vcpu,
					 struct vmcb_ctrl_area_cached *to,
					 struct vmcb_control_area *from)
{
	for (i = 0; i < MAX_INTERCEPT; i++)
		to->intercepts[i] = from->intercepts[i];
}

static void nested_vmcb02_prepare_control(struct vcpu_svm *svm,
					  unsigned long vmcb12_rip)
{
	/*
	 * Merge guest and host intercepts - must be called with vcpu in
	 * guest-mode to take effect.
	 */
	recalc_intercepts(svm);
}

int nested_svm_vmexit(struct vcpu_svm *svm)
{
	nested_svm_copy_common_state(svm->nested.vmcb02.ptr, svm->vmcb01.ptr);
	return 0;
}
""",
    "Documentation/virt/kvm/api.rst": """\
7.22 KVM_CAP_X86_BUS_LOCK_EXIT
-------------------------------

If KVM_BUS_LOCK_DETECTION_EXIT is set, KVM exits to userspace.

Note! Check KVM_RUN_X86_BUS_LOCK regardless of the exit reason.

7.23 KVM_CAP_PPC_DAWR1
----------------------

Last line of another section.
""",
    "tools/testing/selftests/kvm/Makefile": """\
TEST_GEN_PROGS_x86_64 = x86_64/cpuid_test
TEST_GEN_PROGS_x86_64 += x86_64/hyperv_svm_test
TEST_GEN_PROGS_x86_64 += x86_64/kvm_clock_test
TEST_GEN_PROGS_x86_64 += x86_64/xss_msr_test
""",
}

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000",
}


def git(root: Path, *args: str) -> str:
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", "-C", str(root), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def make_tree(root: Path, overrides: dict[str, str | None] | None = None) -> Path:
    """Write the synthetic tree (``None`` in overrides deletes a file) and commit it."""
    files = dict(FILES)
    files.update(overrides or {})
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for path, text in files.items():
        if text is None:
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "synthetic base")
    return root


class DirReader:
    """probe.TreeReader over a directory on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, path: str) -> str | None:
        p = self.root / path
        return p.read_text() if p.is_file() else None
