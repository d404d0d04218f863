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
 * */
#include "kseries_design.h"
#include "svm_util.h"

#define L2_GUEST_STACK_SIZE	64

extern char kseries_l1_lock[], kseries_l1_lock_end[];

static void l2_code(void)
{
	asm volatile("lock addl $1, %0" : "+m" (*kseries_split_value()) : : "memory");
	vmmcall();
}

static noinline void l1_code(struct svm_test_data *svm)
{
	unsigned long l2_guest_stack[L2_GUEST_STACK_SIZE];

	asm volatile("kseries_l1_lock: lock addl $1, %0\n"
		     "kseries_l1_lock_end:\n"
		     : "+m" (*kseries_split_value()) : : "memory");

	generic_svm_setup(svm, l2_code, &l2_guest_stack[L2_GUEST_STACK_SIZE]);
	run_guest(svm->vmcb, svm->vmcb_gpa);
	GUEST_ASSERT(svm->vmcb->control.exit_code == SVM_EXIT_VMMCALL);
	GUEST_DONE();
}

int main(void)
{
	struct kvm_vcpu *vcpu;
	vm_vaddr_t svm_gva;
	struct kvm_vm *vm;
	u32 exits;

	kseries_require_bus_lock_exit();
	__TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_SVM), "the vCPU cannot run a nested SVM guest");

	ksft_print_header();
	ksft_set_plan(1);

	vm = vm_create(1);
	vm_enable_cap(vm, KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_EXIT);
	vcpu = vm_vcpu_add(vm, 0, l1_code);
	vcpu_alloc_svm(vm, &svm_gva);
	vcpu_args_set(vcpu, 1, svm_gva);

	exits = kseries_run_emulating_first(vcpu, kseries_l1_lock, kseries_l1_lock_end);
	kseries_report(vm, exits, "L2's bus lock exits though KVM left L1 a count of one",
		       "the count of one KVM left for L1's emulated add let L2's bus lock run without an exit");

	kvm_vm_free(vm);
	ksft_finished();
}
