"""Read the facts of a base once, into one typed object the templates use.

Adaptation to a new base lives here: paths, layouts, free bits, neighbours,
helper names. Nothing is keyed on a version number; every fact is read from
the base's own files, and a fact that cannot be read raises an error naming
the file and what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kseries.errors import KseriesError
from kseries.render import csource
from kseries.render.reading import ProbeError, TreeReader, block_body, need
from kseries.render.rip import (
    KVM_HOST_H,
    KVM_SVM_H,
    NESTED_C,
    X86_C,
    X86_H,
    Nested,
    Rip,
    probe_nested,
    probe_rip,
)

CPUFEATURES = "arch/x86/include/asm/cpufeatures.h"
SVM_H = "arch/x86/include/asm/svm.h"
UAPI_SVM_H = "arch/x86/include/uapi/asm/svm.h"
SVM_C = "arch/x86/kvm/svm/svm.c"
PROC_C = "arch/x86/kernel/cpu/proc.c"
MKCAPFLAGS = "arch/x86/kernel/cpu/mkcapflags.sh"
API_RST = "Documentation/virt/kvm/api.rst"
UAPI_KVM_H = "include/uapi/linux/kvm.h"
SELFTESTS = "tools/testing/selftests/kvm"

# Hardware facts (AMD APM vol. 2, 15.14.5; the cover letter).
CPUID_WORD, CPUID_BIT = 15, 29
INTERCEPT_WORD, INTERCEPT_BIT = 5, 5
COUNTER_OFFSET = 0x120
EXIT_CODE = 0xA5
TEST_NAME = "kvm_buslock_test"


@dataclass(frozen=True)
class Selftest:
    dir: str  # "x86_64" or "x86"
    makefile: str  # path of the makefile that lists the x86 tests
    var: str  # "TEST_GEN_PROGS_x86_64" or "TEST_GEN_PROGS_x86"
    before: str  # the entry line the new one goes before ("" = append after `after`)
    after: str  # the last entry line of the list
    path: str  # where the test source goes
    # The selftests' .gitignore, where it lists every test binary (6.1); all
    # three are "" where it ignores everything but sources by wildcard.
    ignore_entry: str  # the line to add, "/x86_64/kvm_buslock_test"
    ignore_before: str  # the entry it goes before ("" = after ignore_after)
    ignore_after: str  # the last entry of the test's directory
    # The vendor test of the base's selftest library, as a C expression that
    # is true on an AMD host ("host_cpu_is_amd"); "" where it has none.
    amd_host: str


@dataclass(frozen=True)
class Cpufeature:
    name: str  # the macro of the new bit
    after: str  # the define line of word 15 the new one follows
    value: str  # "(15*32+29)"
    # How a define's comment keeps the flag off /proc/cpuinfo: '"" ' where
    # mkcapflags.sh names every flag that does not opt out (6.1), "" where it
    # names only the flags whose comment starts with a quoted name (6.12).
    unnamed: str


@dataclass(frozen=True)
class Intercept:
    after: str  # the enum entry the new one follows
    value: int  # 165
    explicit: bool  # whether the new entry needs "= value"


@dataclass(frozen=True)
class Vmcb:
    field_line: str  # the reserved array line that covers 0x120, as written
    name: str  # its name, e.g. "reserved_8"
    before: int  # bytes kept in front of the counter
    after: int  # bytes left behind it
    tail_name: str  # name of the reserved array behind the counter
    renames: tuple[tuple[str, str], ...]  # later reserved lines, renumbered (old, new)
    size: int  # bytes of fixed fields up to the software area (unchanged by the series)


@dataclass(frozen=True)
class Exits:
    code_after: str  # the SVM_EXIT_* define the new code follows
    table_after: str  # the SVM_EXIT_REASONS entry the new name follows
    handler_after: str  # the svm_exit_handlers[] entry the new handler follows


@dataclass(frozen=True)
class Kvm:
    bus_lock_cap: str  # lvalue that says "this CPU can exit on bus locks"
    cap_declared_in: str  # the header declaring it (x86.h's struct kvm_caps, or asm/kvm_host.h)
    # The helper that asks whether a vCPU's CPUID has a feature (6.1 and 6.12:
    # guest_cpuid_has; newer bases: guest_cpu_cap_has). The series does not
    # offer the feature to L1, so no template calls it; it is probed so that a
    # change that does (nested support) adapts instead of hard-coding one.
    guest_has: str
    # The SEV guests whose RIP KVM cannot read (it reads as 0), as the base's
    # svm/svm.h knows them: "SEV-ES or SNP", "SEV-ES", or "" for none.
    encrypted_guests: str


@dataclass(frozen=True)
class Doc:
    section: str  # "7.22"
    last_line: str  # the last text line of the section, after which the note goes


@dataclass(frozen=True)
class Facts:
    selftest: Selftest
    cpufeature: Cpufeature
    intercept: Intercept
    vmcb: Vmcb
    exits: Exits
    kvm: Kvm
    doc: Doc
    rip: Rip
    nested: Nested
    present: tuple[str, ...] = field(default=())  # parts of the feature the base already has


def probe(tree: TreeReader) -> Facts:
    """Read every fact the templates need from ``tree``."""
    require_bus_lock_detection(tree)
    return Facts(
        selftest=probe_selftest(tree),
        cpufeature=probe_cpufeature(need(tree, CPUFEATURES)),
        intercept=probe_intercept(need(tree, SVM_H)),
        vmcb=probe_vmcb(need(tree, SVM_H)),
        exits=probe_exits(need(tree, UAPI_SVM_H), need(tree, SVM_C)),
        kvm=probe_kvm(need(tree, X86_H), need(tree, KVM_HOST_H),
                      tree.read("arch/x86/kvm/cpuid.h") or "", need(tree, KVM_SVM_H)),
        doc=probe_doc(need(tree, API_RST)),
        rip=probe_rip(need(tree, KVM_HOST_H), need(tree, X86_C), tree.read(X86_H) or ""),
        nested=probe_nested(need(tree, KVM_SVM_H), need(tree, NESTED_C)),
        present=present_parts(tree),
    )


def probe_selftest(tree: TreeReader) -> Selftest:
    for name in ("Makefile.kvm", "Makefile"):
        mk = tree.read(f"{SELFTESTS}/{name}")
        if mk is None:
            continue
        m = re.search(r"^(TEST_GEN_PROGS_x86(?:_64)?)\s*\+?=\s*(x86(?:_64)?)/", mk, re.M)
        if not m:
            continue
        var, sub = m.group(1), m.group(2)
        entries = re.findall(rf"^{var}\s*\+?=\s*{sub}/(\S+)\s*$", mk, re.M)
        lines = re.findall(rf"^{var}\s*\+?=\s*{sub}/\S+[ \t]*$", mk, re.M)
        later = [ln for e, ln in zip(entries, lines, strict=True) if e > TEST_NAME]
        path = f"{SELFTESTS}/{name}"
        entry, ignore_before, ignore_after = probe_gitignore(tree.read(f"{SELFTESTS}/.gitignore"),
                                                             sub)
        return Selftest(sub, path, var, later[0] if later else "", lines[-1],
                        f"{SELFTESTS}/{sub}/{TEST_NAME}.c", entry, ignore_before, ignore_after,
                        probe_amd_host(tree.read(f"{SELFTESTS}/include/{sub}/processor.h")
                                       or ""))
    raise ProbeError(f"{SELFTESTS}/Makefile", "the x86 selftest list (TEST_GEN_PROGS_x86...)")


def probe_gitignore(text: str | None, sub: str) -> tuple[str, str, str]:
    """(entry, before, after) for the test binary in the selftests' .gitignore, or three ""."""
    listed = re.findall(rf"^/{sub}/[\w-]+$", text or "", re.M)
    if not listed:
        return "", "", ""  # ignored by a wildcard, or no .gitignore at all
    entry = f"/{sub}/{TEST_NAME}"
    later = [ln for ln in listed if ln > entry]
    return entry, later[0] if later else "", listed[-1]


def probe_amd_host(processor_h: str) -> str:
    if re.search(r"^extern bool host_cpu_is_amd;", processor_h, re.M):
        return "host_cpu_is_amd"
    if re.search(r"\bbool is_amd_cpu\(void\)", processor_h):
        return "is_amd_cpu()"
    return ""


def probe_cpufeature(text: str) -> Cpufeature:
    word = []
    for d in csource.defines(text, "X86_"):
        m = re.fullmatch(rf"\(\s*{CPUID_WORD}\s*\*\s*32\s*\+\s*(\d+)\s*\)", d.value)
        if m:
            word.append((int(m.group(1)), d))
    if not word:
        raise ProbeError(CPUFEATURES, f"the defines of capability word {CPUID_WORD}")
    taken = [d.name for bit, d in word if bit == CPUID_BIT]
    if taken and "BUS_LOCK" not in taken[0]:
        raise ProbeError(CPUFEATURES, f"a free bit {CPUID_BIT} in word {CPUID_WORD}",
                         f"it is taken by {taken[0]}")
    below = [(bit, d) for bit, d in word if bit < CPUID_BIT]
    anchor = max(below, key=lambda x: x[0])[1] if below else word[0][1]
    # mkcapflags.sh of 6.1 names every flag unless its comment starts with "";
    # newer ones name only flags whose comment starts with a quoted name.
    unnamed = '"" ' if re.search(r'/\*\s*""', text) else ""
    return Cpufeature("X86_VIRT_FEATURE_BUS_LOCK_THRESHOLD", anchor.line,
                      f"({CPUID_WORD}*32+{CPUID_BIT})", unnamed)


def _intercept_enum(text: str) -> tuple[str, list[csource.EnumEntry]]:
    words = block_body(text, r"^enum intercept_words\s*\{", SVM_H, "enum intercept_words")
    wconst = {e.name: e.value for e in csource.enum_entries(words)}
    for m in re.finditer(r"^enum\s*\{", text, re.M):
        s, e = csource.block_at(text, m.start())
        body = text[text.index("{", s) + 1:e - 1]
        if "INTERCEPT_VMRUN" in body:
            return body, csource.enum_entries(body, wconst)
    raise ProbeError(SVM_H, "the intercept bit enum (the one with INTERCEPT_VMRUN)")


def probe_intercept(text: str) -> Intercept:
    _, entries = _intercept_enum(text)
    value = INTERCEPT_WORD * 32 + INTERCEPT_BIT
    clash = [e.name for e in entries if e.value == value]
    if clash and clash[0] != "INTERCEPT_BUSLOCK":
        raise ProbeError(SVM_H, f"a free intercept bit {value}", f"it is {clash[0]}")
    below = [e for e in entries if e.value < value]
    if not below:
        raise ProbeError(SVM_H, f"an intercept entry below {value}")
    prev = max(below, key=lambda e: e.value)
    idx = entries.index(prev)
    nxt = entries[idx + 1] if idx + 1 < len(entries) else None
    if nxt is not None and not nxt.explicit and nxt.value < value:
        raise ProbeError(SVM_H, f"a place for intercept {value} after {prev.name}",
                         f"{nxt.name} follows it implicitly")
    return Intercept(prev.name, value, explicit=prev.value != value - 1)


def probe_vmcb(text: str) -> Vmcb:
    words = block_body(text, r"^enum intercept_words\s*\{", SVM_H, "enum intercept_words")
    consts = {e.name: e.value for e in csource.enum_entries(words)}
    body = block_body(text, r"^struct\b.*\bvmcb_control_area\s*\{", SVM_H,
                      "struct vmcb_control_area")
    try:
        fields = csource.packed_fields(body, consts)
    except csource.ParseError as exc:
        raise ProbeError(SVM_H, "the layout of struct vmcb_control_area", str(exc)) from exc
    cover = [f for f in fields if f.offset <= COUNTER_OFFSET < f.offset + f.size]
    if not cover:
        raise ProbeError(SVM_H, f"a field at offset {COUNTER_OFFSET:#x} of vmcb_control_area")
    f = cover[0]
    if f.name == "bus_lock_counter":
        return Vmcb(f.line, f.name, 0, 0, "", (), fields[-1].offset + fields[-1].size)
    if f.type != "u8" or not f.name.startswith("reserved_") or f.count is None:
        raise ProbeError(SVM_H, f"a reserved u8 array over offset {COUNTER_OFFSET:#x}",
                         f"{f.name} is there")
    before = COUNTER_OFFSET - f.offset
    after = f.offset + f.size - COUNTER_OFFSET - 2
    if after < 0:
        raise ProbeError(SVM_H, f"two free bytes at {COUNTER_OFFSET:#x}", f"{f.name} ends earlier")
    numbered = [x for x in fields if re.fullmatch(r"reserved_\d+", x.name)]
    later = [x for x in numbered if x.offset > f.offset]
    renames = []
    if re.fullmatch(r"reserved_\d+", f.name):
        n = int(f.name.split("_")[1])
        tail = f"reserved_{n + 1}"
        for i, x in enumerate(later):
            new = x.line.replace(x.name, f"reserved_{n + 2 + i}", 1)
            renames.append((x.line, new))
    else:
        tail = f"reserved_{len(numbered) + 1}"
    size = fields[-1].offset + fields[-1].size
    return Vmcb(f.line, f.name, before, after, tail, tuple(renames), size)


def probe_exits(uapi: str, svm_c: str) -> Exits:
    codes = {}
    for d in csource.defines(uapi, "SVM_EXIT_"):
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", d.value):
            codes[d.name] = int(d.value, 16)
    below = sorted((v, n) for n, v in codes.items() if v < EXIT_CODE)
    if not below:
        raise ProbeError(UAPI_SVM_H, f"SVM_EXIT_* codes below {EXIT_CODE:#x}")
    table = re.findall(r"\{\s*(SVM_EXIT_\w+),\s*\"[^\"]*\"\s*\}", uapi)
    handlers = re.findall(r"^\s*\[(SVM_EXIT_\w+)\]\s*=", svm_c, re.M)
    return Exits(
        code_after=below[-1][1],
        table_after=_nearest(table, codes, UAPI_SVM_H, "the SVM_EXIT_REASONS table"),
        handler_after=_nearest(handlers, codes, SVM_C, "svm_exit_handlers[]"),
    )


def _nearest(names: list[str], codes: dict[str, int], path: str, what: str) -> str:
    """The entry of ``names`` with the largest exit code below ours."""
    below = [(codes[n], n) for n in names if n in codes and codes[n] < EXIT_CODE]
    if not below:
        raise ProbeError(path, f"an entry below {EXIT_CODE:#x} in {what}")
    return max(below)[1]


def require_bus_lock_detection(tree: TreeReader) -> None:
    """The series implements KVM's bus lock exit on SVM: the base must have it for VMX."""
    missing = []
    if not re.search(r"^#define KVM_CAP_X86_BUS_LOCK_EXIT\b", tree.read(UAPI_KVM_H) or "", re.M):
        missing.append(f"KVM_CAP_X86_BUS_LOCK_EXIT in {UAPI_KVM_H}")
    if not re.search(r"\bbool bus_lock_detection_enabled;", tree.read(KVM_HOST_H) or ""):
        missing.append(f"bus_lock_detection_enabled in {KVM_HOST_H}")
    if missing:
        raise KseriesError(
            f"this base predates KVM's bus lock detection: it has no "
            f"{' and no '.join(missing)}; both came with Linux 5.12, and the series "
            f"builds on them",
            hint="the 5.12 bus lock detection series (KVM_CAP_X86_BUS_LOCK_EXIT on VMX) "
                 "has to come first")


def probe_kvm(x86_h: str, kvm_host: str, cpuid_h: str, svm_h: str) -> Kvm:
    if re.search(r"struct kvm_caps\s*\{[^}]*\bhas_bus_lock_exit\b", x86_h, re.S):
        cap, where = "kvm_caps.has_bus_lock_exit", X86_H
    else:
        decl = r"^extern bool kvm_has_bus_lock_exit;"
        where = next((path for path, text in ((X86_H, x86_h), (KVM_HOST_H, kvm_host))
                      if re.search(decl, text, re.M)), "")
        if not where:
            raise ProbeError(X86_H, "KVM's bus lock exit capability",
                             f"neither kvm_caps.has_bus_lock_exit nor a global "
                             f"kvm_has_bus_lock_exit declared here or in {KVM_HOST_H}")
        cap = "kvm_has_bus_lock_exit"
    if re.search(r"\bbool guest_cpuid_has\(", cpuid_h):
        helper = "guest_cpuid_has"
    elif re.search(r"\bbool guest_cpu_cap_has\(", cpuid_h):
        helper = "guest_cpu_cap_has"
    else:
        helper = ""  # reported by `kseries facts`; no template needs it today
    kinds = [name for name, fn in (("SEV-ES", "sev_es_guest"), ("SNP", "sev_snp_guest"))
             if re.search(rf"\bbool {fn}\(", svm_h)]
    return Kvm(cap, where, helper, " or ".join(kinds))


def probe_doc(text: str) -> Doc:
    m = re.search(r"^(\d+(?:\.\d+)*)\.?\s+KVM_CAP_X86_BUS_LOCK_EXIT\s*\n-+\s*\n", text, re.M)
    if not m:
        raise ProbeError(API_RST, "the KVM_CAP_X86_BUS_LOCK_EXIT section")
    rest = text[m.end():]
    nxt = re.search(r"^\S[^\n]*\n[-=~^]{3,}\s*$", rest, re.M)
    section = rest[: nxt.start()] if nxt else rest
    lines = [ln for ln in section.splitlines() if ln.strip()]
    return Doc(m.group(1), lines[-1])


def present_parts(tree: TreeReader) -> tuple[str, ...]:
    """Which parts of the feature the base already has, by what shows them."""
    found = []
    if "x86_virt_flags" in (tree.read(PROC_C) or ""):
        found.append("virt tag (x86_virt_flags in proc.c)")
    if re.search(r"\(\s*15\s*\*\s*32\s*\+\s*29\s*\)", tree.read(CPUFEATURES) or ""):
        found.append("CPUID bit (word 15, bit 29 in cpufeatures.h)")
    svm_h = tree.read(SVM_H) or ""
    if "INTERCEPT_BUSLOCK" in svm_h or "bus_lock_counter" in svm_h:
        found.append("SVM definitions (INTERCEPT_BUSLOCK / bus_lock_counter in svm.h)")
    if "SVM_EXIT_BUS_LOCK" in (tree.read(UAPI_SVM_H) or ""):
        found.append("exit code (SVM_EXIT_BUS_LOCK in uapi svm.h)")
    if "bus_lock_counter" in (tree.read(SVM_C) or ""):
        found.append("SVM exit handler (bus_lock_counter in svm.c)")
    if "bus_lock_counter" in (tree.read(NESTED_C) or ""):
        found.append("nested handling (bus_lock_counter in nested.c)")
    if "cui_linear_rip" in (tree.read(KVM_HOST_H) or ""):
        found.append("common user-exit RIP (cui_linear_rip in asm/kvm_host.h)")
    if "bus_lock_rip" in (tree.read(KVM_SVM_H) or ""):
        found.append("nested RIP tracking (bus_lock_rip in svm/svm.h)")
    for name in ("Makefile.kvm", "Makefile"):
        if TEST_NAME in (tree.read(f"{SELFTESTS}/{name}") or ""):
            found.append(f"selftest ({TEST_NAME} in {SELFTESTS}/{name})")
    return tuple(found)


def facts_from_json(d: dict[str, Any]) -> Facts:
    """The inverse of ``dataclasses.asdict(facts)`` (for the render cache)."""
    v = dict(d["vmcb"])
    v["renames"] = tuple((str(a), str(b)) for a, b in v["renames"])
    return Facts(
        selftest=Selftest(**d["selftest"]),
        cpufeature=Cpufeature(**d["cpufeature"]),
        intercept=Intercept(**d["intercept"]),
        vmcb=Vmcb(**v),
        exits=Exits(**d["exits"]),
        kvm=Kvm(**d["kvm"]),
        doc=Doc(**d["doc"]),
        rip=Rip(**{**d["rip"], "uses": tuple((str(f), str(ln)) for f, ln in d["rip"]["uses"])}),
        nested=Nested(**d["nested"]),
        present=tuple(d["present"]),
    )
