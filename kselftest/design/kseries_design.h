/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What kseries' design checks share (they are not part of any series): a
 * split-lock value in the guest, the check that the capability is there,
 * and the run loop in which userspace emulates the first bus lock, as a VMM
 * would, and lets every later one complete.
 *
 * Each check has two locked adds on the value; it reports
 * "design: <exits> bus lock exits, <n> completed", where <n> is the number
 * of adds the guest's CPU carried out, for the harness to compare with what
 * the emulated CPU's model counted.
 */
#ifndef KSERIES_DESIGN_H
#define KSERIES_DESIGN_H

#include <linux/types.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"

#define KSERIES_SPLIT_OFFSET	62	/* two bytes in one cache line, two in the next */
#define KSERIES_MAX_RUNS	16

static u8 kseries_lock_buf[128] __aligned(128);

static inline u32 *kseries_split_value(void)
{
	return (u32 *)&kseries_lock_buf[KSERIES_SPLIT_OFFSET];
}

static void kseries_require_bus_lock_exit(void)
{
	__TEST_REQUIRE(kvm_check_cap(KVM_CAP_X86_BUS_LOCK_EXIT) &
		       KVM_BUS_LOCK_DETECTION_EXIT,
		       "KVM_BUS_LOCK_DETECTION_EXIT not supported: the CPU has no Bus Lock Threshold");
}

static u32 *kseries_guest_value(struct kvm_vm *vm)
{
	return addr_gva2hva(vm, (vm_vaddr_t)kseries_split_value());
}

/*
 * Run @vcpu to GUEST_DONE.  The first bus lock exit must be at @lock (the
 * exit is fault-like): this emulates the add and resumes at @lock_end.
 * Later exits resume at the same RIP.  Returns the bus lock exits seen.
 */
static u32 kseries_run_emulating_first(struct kvm_vcpu *vcpu, void *lock, void *lock_end)
{
	struct kvm_regs regs;
	struct ucall uc;
	u32 exits = 0;
	int runs;

	for (runs = 0; ; runs++) {
		TEST_ASSERT(runs < KSERIES_MAX_RUNS, "No progress after %d KVM_RUNs", runs);
		vcpu_run(vcpu);

		if (vcpu->run->exit_reason == KVM_EXIT_X86_BUS_LOCK) {
			if (exits++)
				continue;	/* resume at the same RIP */
			vcpu_regs_get(vcpu, &regs);
			TEST_ASSERT(regs.rip == (u64)lock,
				    "First bus lock exit at RIP 0x%llx, expected the locked add at 0x%lx",
				    regs.rip, (unsigned long)lock);
			/* Emulate it, as a VMM would: do the add, move RIP past it. */
			(*kseries_guest_value(vcpu->vm))++;
			regs.rip = (u64)lock_end;
			vcpu_regs_set(vcpu, &regs);
			continue;
		}

		TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_IO,
			    "Unexpected exit reason: %u (%s)", vcpu->run->exit_reason,
			    exit_reason_str(vcpu->run->exit_reason));
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_DONE:
			return exits;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("Unexpected ucall %lu", (unsigned long)uc.cmd);
		}
	}
}

/* Two adds, one emulated: the value, the counts, and the verdict (2 exits passes). */
static void kseries_report(struct kvm_vm *vm, u32 exits, const char *pass, const char *fail)
{
	u32 val = *kseries_guest_value(vm);

	TEST_ASSERT(val == 2, "The guest's value is %u after two adds, expected 2", val);
	ksft_print_msg("design: %u bus lock exits, %u completed\n", exits, val - 1);
	if (exits == 2)
		ksft_test_result_pass("design: %s\n", pass);
	else
		ksft_test_result_fail("design: %u bus lock exit(s), expected 2: %s\n", exits, fail);
}

#endif /* KSERIES_DESIGN_H */
