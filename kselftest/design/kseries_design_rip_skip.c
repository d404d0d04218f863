// SPDX-License-Identifier: GPL-2.0-only
/*
 * kseries design check, not part of the series: a bus lock that userspace
 * emulated must not open the door for the next one.
 *
 * A VMM may handle a KVM_EXIT_X86_BUS_LOCK exit by emulating the locked
 * instruction itself and moving RIP past it.  KVM must then not let the next
 * bus lock run without an exit: the Bus Lock Threshold counter may be set to
 * one only to let the *same* instruction complete, when the vCPU resumes at
 * the RIP it exited on.
 *
 * The guest does two split locks, at two instructions.  At the first exit
 * (fault-like on AMD: RIP at the instruction) this program does the add in
 * guest memory and moves RIP past it.  The second lock must exit too; this
 * program then resumes at the same RIP and the lock completes.
 *
 * It prints "design: <exits> bus lock exits, <n> completed", where <n> is
 * the number of locked adds the guest's CPU carried out (the value, less the
 * one this program emulated), for the harness to compare with what the
 * emulated CPU's model counted.
 */
#include <linux/types.h>
#include <string.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"

#define SPLIT_OFFSET	62	/* bytes 62..65: two in one cache line, two in the next */
#define MAX_RUNS	16

static u8 lock_buf[128] __aligned(128);

extern char kseries_lock1[], kseries_lock1_end[], kseries_lock2[];

static __attribute__((noinline)) void guest_code(void)
{
	u32 *val = (void *)&lock_buf[SPLIT_OFFSET];

	asm volatile("kseries_lock1: lock addl $1, %0\n"
		     "kseries_lock1_end:\n"
		     "kseries_lock2: lock addl $1, %0\n"
		     : "+m" (*val) : : "memory");
	GUEST_DONE();
}

static bool cpu_is_amd(void)
{
	u32 eax, vendor[3];

	/* The vendor string is in EBX, EDX, ECX, in that order. */
	cpuid(0, &eax, &vendor[0], &vendor[2], &vendor[1]);
	return !memcmp(vendor, "AuthenticAMD", sizeof(vendor)) ||
	       !memcmp(vendor, "HygonGenuine", sizeof(vendor));
}

static u32 *guest_value(struct kvm_vm *vm)
{
	return addr_gva2hva(vm, (vm_vaddr_t)&lock_buf[SPLIT_OFFSET]);
}

int main(void)
{
	u32 exits = 0, emulated = 0, val;
	struct kvm_regs regs;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	bool done = false;
	int runs;

	__TEST_REQUIRE(kvm_check_cap(KVM_CAP_X86_BUS_LOCK_EXIT) &
		       KVM_BUS_LOCK_DETECTION_EXIT,
		       "KVM_BUS_LOCK_DETECTION_EXIT not supported: the CPU has no Bus Lock Threshold");
	__TEST_REQUIRE(cpu_is_amd(),
		       "the check is about AMD's fault-like bus lock exit");

	ksft_print_header();
	ksft_set_plan(1);

	vm = vm_create(1);
	vm_enable_cap(vm, KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_EXIT);
	vcpu = vm_vcpu_add(vm, 0, guest_code);

	for (runs = 0; !done; runs++) {
		TEST_ASSERT(runs < MAX_RUNS, "No progress after %d KVM_RUNs", runs);
		vcpu_run(vcpu);

		if (vcpu->run->exit_reason == KVM_EXIT_X86_BUS_LOCK) {
			exits++;
			if (exits > 1)
				continue;	/* resume at the same RIP */
			vcpu_regs_get(vcpu, &regs);
			TEST_ASSERT(regs.rip == (u64)kseries_lock1,
				    "First bus lock exit at RIP 0x%llx, expected the locked add at 0x%lx",
				    regs.rip, (unsigned long)kseries_lock1);
			/* Emulate it, as a VMM would: do the add, move RIP past it. */
			val = *guest_value(vm);
			*guest_value(vm) = val + 1;
			emulated++;
			regs.rip = (u64)kseries_lock1_end;
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
		ksft_test_result_pass("design: the bus lock after an emulated one exits again\n");
	else
		ksft_test_result_fail("design: %u bus lock exit(s), expected 2: after userspace moved RIP past the first locked add, the second ran without an exit\n",
				      exits);

	kvm_vm_free(vm);
	ksft_finished();
}
