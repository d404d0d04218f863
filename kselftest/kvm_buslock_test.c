// SPDX-License-Identifier: GPL-2.0-only
/*
 * Bus lock exit test.
 *
 * The guest performs locked read-modify-writes on a 4-byte value that
 * straddles a 64-byte cache line boundary, i.e. split locks, which the CPU
 * treats as bus locks.  It does so in L1 and, if the vCPU can run a nested
 * guest (SVM or VMX), again in an L2 guest.  With KVM_BUS_LOCK_DETECTION_EXIT
 * enabled, every one of them must come out to userspace as a
 * KVM_EXIT_X86_BUS_LOCK exit, and the host checks the exact count.
 *
 * The two vendors report the exit at different points of the instruction:
 *  - AMD's Bus Lock Threshold exit is fault-like: RIP still points at the
 *    locked instruction, which has not updated memory yet.
 *  - Intel's bus lock detection is trap-like: RIP points after the locked
 *    instruction, which has already updated memory.
 * At each exit the host reads the guest's value and checks it accordingly.
 */
#include <linux/types.h>
#include <string.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "svm_util.h"
#include "vmx.h"

#define NR_L1_BUS_LOCKS		100
#define NR_L2_BUS_LOCKS		100
#define L2_GUEST_STACK_SIZE	64

/* Bytes 62..65 of the buffer: two in one cache line, two in the next. */
#define SPLIT_OFFSET		62

enum {
	STAGE_L1_DONE = 1,
	STAGE_L2_DONE,
};

/*
 * Aligning the buffer to its size keeps the split value inside one page,
 * so that the host can read it through a single guest-virtual translation.
 */
static u8 lock_buf[128] __aligned(128);

static u32 *split_value(void)
{
	return (void *)&lock_buf[SPLIT_OFFSET];
}

static void do_split_locks(int nr)
{
	u32 *val = split_value();
	int i;

	for (i = 0; i < nr; i++)
		asm volatile("lock addl $1, %0" : "+m" (*val) : : "memory");
}

static void l2_svm_code(void)
{
	do_split_locks(NR_L2_BUS_LOCKS);
	vmmcall();
}

static void l2_vmx_code(void)
{
	do_split_locks(NR_L2_BUS_LOCKS);
	vmcall();
}

static void l1_svm_code(struct svm_test_data *svm)
{
	unsigned long l2_guest_stack[L2_GUEST_STACK_SIZE];
	struct vmcb *vmcb = svm->vmcb;

	generic_svm_setup(svm, l2_svm_code,
			  &l2_guest_stack[L2_GUEST_STACK_SIZE]);
	run_guest(vmcb, svm->vmcb_gpa);
	GUEST_ASSERT(vmcb->control.exit_code == SVM_EXIT_VMMCALL);
}

static void l1_vmx_code(struct vmx_pages *vmx)
{
	unsigned long l2_guest_stack[L2_GUEST_STACK_SIZE];

	GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_vmcs(vmx));
	prepare_vmcs(vmx, l2_vmx_code, &l2_guest_stack[L2_GUEST_STACK_SIZE]);
	GUEST_ASSERT(!vmlaunch());
	GUEST_ASSERT(vmreadz(VM_EXIT_REASON) == EXIT_REASON_VMCALL);
}

/* @nested_data is NULL when the vCPU cannot run a nested guest. */
static void guest_code(void *nested_data)
{
	do_split_locks(NR_L1_BUS_LOCKS);
	GUEST_ASSERT(READ_ONCE(*split_value()) == NR_L1_BUS_LOCKS);
	GUEST_SYNC(STAGE_L1_DONE);

	if (nested_data) {
		if (this_cpu_has(X86_FEATURE_SVM))
			l1_svm_code(nested_data);
		else
			l1_vmx_code(nested_data);

		GUEST_ASSERT(READ_ONCE(*split_value()) ==
			     NR_L1_BUS_LOCKS + NR_L2_BUS_LOCKS);
		GUEST_SYNC(STAGE_L2_DONE);
	}

	GUEST_DONE();
}

/*
 * Whether bus lock exits are fault-like (AMD) or trap-like (Intel).  KVM only
 * advertises the nested virtualization feature of its own vendor; if nested
 * is disabled, go by the host CPU's vendor string.
 */
static bool bus_lock_exit_is_fault_like(void)
{
	u32 eax, vendor[3];

	if (kvm_cpu_has(X86_FEATURE_SVM))
		return true;
	if (kvm_cpu_has(X86_FEATURE_VMX))
		return false;

	/* The vendor string is in EBX, EDX, ECX, in that order. */
	cpuid(0, &eax, &vendor[0], &vendor[2], &vendor[1]);
	return !memcmp(vendor, "AuthenticAMD", sizeof(vendor)) ||
	       !memcmp(vendor, "HygonGenuine", sizeof(vendor));
}

static u32 read_split_value(struct kvm_vm *vm)
{
	u32 val;

	memcpy(&val, addr_gva2hva(vm, (vm_vaddr_t)split_value()), sizeof(val));
	return val;
}

struct bus_lock_stats {
	bool fault_like;
	u32 nr_exits;
};

static void check_bus_lock_exit(struct kvm_vcpu *vcpu,
				struct bus_lock_stats *stats)
{
	u32 val, expected;

	stats->nr_exits++;

	/*
	 * The value starts at zero and every locked add exits exactly once.
	 * A fault-like exit arrives before the add of this exit is done, a
	 * trap-like one after it.
	 */
	val = read_split_value(vcpu->vm);
	expected = stats->fault_like ? stats->nr_exits - 1 : stats->nr_exits;
	TEST_ASSERT(val == expected,
		    "Bus lock exit %u: guest value is %u, expected %u (%s exit)",
		    stats->nr_exits, val, expected,
		    stats->fault_like ? "fault-like" : "trap-like");
}

static void check_stage(struct bus_lock_stats *stats, uint64_t stage,
			u32 expected_exits)
{
	TEST_ASSERT(stats->nr_exits == expected_exits,
		    "Stage %lu: got %u bus lock exits, expected %u",
		    (unsigned long)stage, stats->nr_exits, expected_exits);
}

int main(void)
{
	struct bus_lock_stats stats = { 0 };
	vm_vaddr_t nested_gva = 0;
	struct kvm_vcpu *vcpu;
	u32 expected_exits;
	bool nested_svm, nested_vmx;
	struct kvm_run *run;
	struct kvm_vm *vm;
	struct ucall uc;
	bool done = false;

	__TEST_REQUIRE(kvm_check_cap(KVM_CAP_X86_BUS_LOCK_EXIT) &
		       KVM_BUS_LOCK_DETECTION_EXIT,
		       "KVM_BUS_LOCK_DETECTION_EXIT not supported: the CPU has no Bus Lock Threshold (AMD) / bus lock detection (Intel)");

	stats.fault_like = bus_lock_exit_is_fault_like();
	nested_svm = kvm_cpu_has(X86_FEATURE_SVM);
	nested_vmx = !nested_svm && kvm_cpu_has(X86_FEATURE_VMX);

	ksft_print_header();
	ksft_set_plan(2);
	ksft_print_msg("%s bus lock exits, nested guest: %s\n",
		       stats.fault_like ? "Fault-like (AMD)" : "Trap-like (Intel)",
		       nested_svm ? "SVM" : nested_vmx ? "VMX" : "none");

	/* Bus lock detection is picked up when the vCPU is created. */
	vm = vm_create(1);
	vm_enable_cap(vm, KVM_CAP_X86_BUS_LOCK_EXIT,
		      KVM_BUS_LOCK_DETECTION_EXIT);
	vcpu = vm_vcpu_add(vm, 0, guest_code);

	if (nested_svm)
		vcpu_alloc_svm(vm, &nested_gva);
	else if (nested_vmx)
		vcpu_alloc_vmx(vm, &nested_gva);
	vcpu_args_set(vcpu, 1, nested_gva);

	run = vcpu->run;
	while (!done) {
		vcpu_run(vcpu);

		/*
		 * Every bus lock exit carries KVM_RUN_X86_BUS_LOCK.  On Intel
		 * the flag may also ride on an exit that goes to userspace for
		 * another reason, so look at the flag for any exit reason.
		 */
		if (run->flags & KVM_RUN_X86_BUS_LOCK)
			check_bus_lock_exit(vcpu, &stats);

		if (run->exit_reason == KVM_EXIT_X86_BUS_LOCK) {
			TEST_ASSERT(run->flags & KVM_RUN_X86_BUS_LOCK,
				    "KVM_EXIT_X86_BUS_LOCK without KVM_RUN_X86_BUS_LOCK in run->flags (0x%x)",
				    run->flags);
			continue;
		}

		TEST_ASSERT(run->exit_reason == KVM_EXIT_IO,
			    "Unexpected exit reason: %u (%s)",
			    run->exit_reason, exit_reason_str(run->exit_reason));

		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			if (uc.args[1] == STAGE_L1_DONE) {
				check_stage(&stats, uc.args[1], NR_L1_BUS_LOCKS);
				ksft_test_result_pass("L1: %u bus lock exits\n",
						      stats.nr_exits);
			} else if (uc.args[1] == STAGE_L2_DONE) {
				check_stage(&stats, uc.args[1],
					    NR_L1_BUS_LOCKS + NR_L2_BUS_LOCKS);
				ksft_test_result_pass("L2: %u bus lock exits\n",
						      stats.nr_exits -
						      NR_L1_BUS_LOCKS);
			} else {
				TEST_FAIL("Unknown stage %lu",
					  (unsigned long)uc.args[1]);
			}
			break;
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

	expected_exits = NR_L1_BUS_LOCKS;
	if (nested_svm || nested_vmx)
		expected_exits += NR_L2_BUS_LOCKS;
	else
		ksft_test_result_skip("L2: the vCPU cannot run a nested guest\n");

	TEST_ASSERT(stats.nr_exits == expected_exits,
		    "Got %u bus lock exits in total, expected %u",
		    stats.nr_exits, expected_exits);

	kvm_vm_free(vm);
	ksft_finished();
}
