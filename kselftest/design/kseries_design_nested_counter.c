// SPDX-License-Identifier: GPL-2.0-only
/*
 * kseries design check, not part of the series: a counter reload meant for
 * L1 must not let a bus lock of L2 through.
 *
 * Review of v3 asked KVM to stop copying the Bus Lock Threshold counter
 * between vmcb01 and vmcb02.  With the copy, a count of one that KVM left in
 * vmcb01 for L1 (its exit handler sets it so that the locked instruction can
 * complete) is carried into vmcb02 on nested VMRUN, and L2's next bus lock
 * runs without an exit.
 *
 * The guest (L1) takes a split lock; at its exit (fault-like: RIP at the
 * instruction) this program emulates the add and moves RIP past it, so the
 * count of one is never used in L1.  L1 then runs L2, which takes a split
 * lock of its own: that one must exit too.  This program resumes L2 at the
 * same RIP and the lock completes.
 *
 * It prints "design: <exits> bus lock exits, <n> completed", where <n> is
 * the number of locked adds the guest's CPU carried out, for the harness to
 * compare with what the emulated CPU's model counted.
 */
#include <linux/types.h>
#include <string.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "svm_util.h"

#define SPLIT_OFFSET		62	/* two bytes in one cache line, two in the next */
#define L2_GUEST_STACK_SIZE	64
#define MAX_RUNS		16

static u8 lock_buf[128] __aligned(128);

extern char kseries_l1_lock[], kseries_l1_lock_end[];

static void l2_code(void)
{
	u32 *val = (void *)&lock_buf[SPLIT_OFFSET];

	asm volatile("lock addl $1, %0" : "+m" (*val) : : "memory");
	vmmcall();
}

static noinline void l1_code(struct svm_test_data *svm)
{
	unsigned long l2_guest_stack[L2_GUEST_STACK_SIZE];
	u32 *val = (void *)&lock_buf[SPLIT_OFFSET];

	asm volatile("kseries_l1_lock: lock addl $1, %0\n"
		     "kseries_l1_lock_end:\n"
		     : "+m" (*val) : : "memory");

	generic_svm_setup(svm, l2_code, &l2_guest_stack[L2_GUEST_STACK_SIZE]);
	run_guest(svm->vmcb, svm->vmcb_gpa);
	GUEST_ASSERT(svm->vmcb->control.exit_code == SVM_EXIT_VMMCALL);
	GUEST_DONE();
}

static u32 *guest_value(struct kvm_vm *vm)
{
	return addr_gva2hva(vm, (vm_vaddr_t)&lock_buf[SPLIT_OFFSET]);
}

int main(void)
{
	u32 exits = 0, emulated = 0, val;
	vm_vaddr_t svm_gva;
	struct kvm_regs regs;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	bool done = false;
	int runs;

	__TEST_REQUIRE(kvm_check_cap(KVM_CAP_X86_BUS_LOCK_EXIT) &
		       KVM_BUS_LOCK_DETECTION_EXIT,
		       "KVM_BUS_LOCK_DETECTION_EXIT not supported: the CPU has no Bus Lock Threshold");
	__TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_SVM),
		       "the vCPU cannot run a nested SVM guest");

	ksft_print_header();
	ksft_set_plan(1);

	vm = vm_create(1);
	vm_enable_cap(vm, KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_EXIT);
	vcpu = vm_vcpu_add(vm, 0, l1_code);
	vcpu_alloc_svm(vm, &svm_gva);
	vcpu_args_set(vcpu, 1, svm_gva);

	for (runs = 0; !done; runs++) {
		TEST_ASSERT(runs < MAX_RUNS, "No progress after %d KVM_RUNs", runs);
		vcpu_run(vcpu);

		if (vcpu->run->exit_reason == KVM_EXIT_X86_BUS_LOCK) {
			exits++;
			if (exits > 1)
				continue;	/* L2's: resume at the same RIP */
			vcpu_regs_get(vcpu, &regs);
			TEST_ASSERT(regs.rip == (u64)kseries_l1_lock,
				    "First bus lock exit at RIP 0x%llx, expected L1's locked add at 0x%lx",
				    regs.rip, (unsigned long)kseries_l1_lock);
			/* Emulate it, as a VMM would: do the add, move RIP past it. */
			val = *guest_value(vm);
			*guest_value(vm) = val + 1;
			emulated++;
			regs.rip = (u64)kseries_l1_lock_end;
			vcpu_regs_set(vcpu, &regs);
			continue;
		}

		TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_IO,
			    "Unexpected exit reason: %u (%s)", vcpu->run->exit_reason,
			    exit_reason_str(vcpu->run->exit_reason));
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_DONE:
			done = true;
			break;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
			break;
		default:
			TEST_FAIL("Unexpected ucall %lu", (unsigned long)uc.cmd);
		}
	}

	val = *guest_value(vm);
	TEST_ASSERT(val == 2, "The guest's value is %u after two adds, expected 2", val);
	ksft_print_msg("design: %u bus lock exits, %u completed\n", exits, val - emulated);
	if (exits == 2)
		ksft_test_result_pass("design: L2's bus lock exits though KVM left L1 a count of one\n");
	else
		ksft_test_result_fail("design: %u bus lock exit(s), expected 2: the count of one KVM left for L1's emulated add let L2's bus lock run without an exit\n",
				      exits);

	kvm_vm_free(vm);
	ksft_finished();
}
