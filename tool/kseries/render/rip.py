"""The facts the merged design hooks into: where KVM keeps a user exit's RIP.

The linear RIP that the PIO completions compare (it becomes cui_linear_rip),
the headers that declare the linear-RIP helpers, struct vmcb_ctrl_area_cached
and vmcb12's RIP on the nested VMRUN path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kseries.render import csource
from kseries.render.reading import ProbeError, block_body

X86_H = "arch/x86/kvm/x86.h"
X86_C = "arch/x86/kvm/x86.c"
KVM_HOST_H = "arch/x86/include/asm/kvm_host.h"
KVM_SVM_H = "arch/x86/kvm/svm/svm.h"
NESTED_C = "arch/x86/kvm/svm/nested.c"


@dataclass(frozen=True)
class Rip:
    """Where KVM keeps the linear RIP of an exit to userspace (the PIO paths)."""

    pio_field: str  # the linear_rip line of struct kvm_pio_request, as written
    cui_after: str  # the complete_userspace_io line of struct kvm_vcpu_arch
    uses: tuple[tuple[str, str], ...]  # (function, line) of x86.c's uses of pio.linear_rip
    declared_in: str  # the header declaring kvm_get_linear_rip() and kvm_is_linear_rip()


@dataclass(frozen=True)
class Nested:
    """The nested SVM code the merged design's RIP tracking hooks into."""

    # The first line of struct vmcb_ctrl_area_cached, the nested state's cache
    # of vmcb12's controls; "" where the base caches a whole struct
    # vmcb_control_area instead (then bus_lock_rip goes beside it, after
    # ``ctl_line`` in struct svm_nested_state, not into the hardware layout).
    cached_struct: str
    ctl_line: str  # the cache's line in struct svm_nested_state ("" with cached_struct)
    rip: str  # the recorded RIP as a member of svm->nested: "ctl.bus_lock_rip" or "bus_lock_rip"
    vmrun_rip: str  # C expression: the L2 RIP that nested VMRUN enters (vmcb12's)


def probe_rip(kvm_host: str, x86_c: str, x86_h: str) -> Rip:
    pio = block_body(kvm_host, r"^struct kvm_pio_request\s*\{", KVM_HOST_H,
                     "struct kvm_pio_request")
    field = re.search(r"^[ \t]*unsigned long linear_rip;[ \t]*$", pio, re.M)
    if not field:
        raise ProbeError(KVM_HOST_H, "linear_rip in struct kvm_pio_request")
    arch = block_body(kvm_host, r"^struct kvm_vcpu_arch\s*\{", KVM_HOST_H, "struct kvm_vcpu_arch")
    cui = re.search(r"^[ \t]*int \(\*complete_userspace_io\)\(struct kvm_vcpu \*vcpu\);$",
                    arch, re.M)
    if not cui:
        raise ProbeError(KVM_HOST_H, "complete_userspace_io in struct kvm_vcpu_arch")
    uses = []
    for m in re.finditer(r"^.*\bpio\.linear_rip\b.*$", x86_c, re.M):
        fn = csource.enclosing_function(x86_c, m.start())
        if fn is None:
            raise ProbeError(X86_C, "the function around a use of pio.linear_rip",
                             m.group(0).strip())
        uses.append((fn, m.group(0)))
    if not uses:
        raise ProbeError(X86_C, "the PIO completions that use vcpu->arch.pio.linear_rip")
    decl = r"\bunsigned long kvm_get_linear_rip\(struct kvm_vcpu \*vcpu\);"
    where = [path for path, text in ((KVM_HOST_H, kvm_host), (X86_H, x86_h))
             if re.search(decl, text) and "bool kvm_is_linear_rip(" in text]
    if not where:
        raise ProbeError(KVM_HOST_H, "the declarations of kvm_get_linear_rip() and "
                         "kvm_is_linear_rip()", f"not in {KVM_HOST_H} nor {X86_H}")
    return Rip(field.group(0), cui.group(0), tuple(uses), where[0])


def probe_nested(svm_h: str, nested_c: str) -> Nested:
    m = re.search(r"^struct vmcb_ctrl_area_cached\s*\{", svm_h, re.M)
    if m:
        cached, ctl, rip = m.group(0), "", "ctl.bus_lock_rip"
    else:
        state = block_body(svm_h, r"^struct svm_nested_state\s*\{", KVM_SVM_H,
                           "struct svm_nested_state")
        line = re.search(r"^[ \t]*struct vmcb_control_area ctl;[ \t]*$", state, re.M)
        if not line:
            raise ProbeError(KVM_SVM_H, "the cache of vmcb12's controls",
                             "neither struct vmcb_ctrl_area_cached nor a struct "
                             "vmcb_control_area ctl in struct svm_nested_state")
        cached, ctl, rip = "", line.group(0), "bus_lock_rip"
    sig = re.search(r"^static void nested_vmcb02_prepare_control\(([^)]*)\)", nested_c, re.M)
    if not sig:
        raise ProbeError(NESTED_C, "nested_vmcb02_prepare_control()")
    params = sig.group(1)
    vmrun_rip = re.search(r"\bunsigned long (\w*rip\w*)", params)
    vmcb12 = re.search(r"\bstruct vmcb \*(vmcb12)\b", params)
    if vmrun_rip:
        expr = vmrun_rip.group(1)
    elif vmcb12:
        expr = f"{vmcb12.group(1)}->save.rip"
    else:
        raise ProbeError(NESTED_C, "vmcb12's RIP in nested_vmcb02_prepare_control()",
                         "neither a RIP parameter nor vmcb12")
    return Nested(cached, ctl, rip, expr)
