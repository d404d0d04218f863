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
 * */
#include <string.h>

#include "kseries_design.h"

extern char kseries_lock1[], kseries_lock1_end[];

static noinline void guest_code(void)
{
	u32 *val = kseries_split_value();

	asm volatile("kseries_lock1: lock addl $1, %0\n"
		     "kseries_lock1_end:\n"
		     "lock addl $1, %0\n"
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

int main(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u32 exits;

	kseries_require_bus_lock_exit();
	__TEST_REQUIRE(cpu_is_amd(), "the check is about AMD's fault-like bus lock exit");

	ksft_print_header();
	ksft_set_plan(1);

	vm = vm_create(1);
	vm_enable_cap(vm, KVM_CAP_X86_BUS_LOCK_EXIT, KVM_BUS_LOCK_DETECTION_EXIT);
	vcpu = vm_vcpu_add(vm, 0, guest_code);

	exits = kseries_run_emulating_first(vcpu, kseries_lock1, kseries_lock1_end);
	kseries_report(vm, exits, "the bus lock after an emulated one exits again",
		       "after userspace moved RIP past the first locked add, the second ran without an exit");

	kvm_vm_free(vm);
	ksft_finished();
}
