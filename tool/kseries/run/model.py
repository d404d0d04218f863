"""What the emulated CPU's Bus Lock Threshold model did, against what the tests saw.

The emulated AMD host runs on kseries' QEMU (``build/emulator.py``), whose
model of the Bus Lock Threshold writes a trace line for every bus lock it
handles in guest mode with the intercept set:

    svm_bus_lock_exit rip 0x... addr 0x... size 4        (#VMEXIT A5h delivered)
    svm_bus_lock_pass addr 0x... size 4 counter now 0    (the lock ran, count - 1)

The guest's programs print what they saw: kvm_buslock_test its exits per
level (``L1: 16 bus lock exits``), the design checks their exits and the
locked operations the guest completed (``design: 2 bus lock exits, 1 completed``).
The model's counts must equal the sum of those: an emulator that never exits,
a kernel that skips the instruction instead of letting it through, or an exit
the tests did not see, all show as a difference here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kseries.run.ktap import Status

_EXIT = re.compile(r"\bsvm_bus_lock_exit\b")
_PASS = re.compile(r"\bsvm_bus_lock_pass\b")
_LEVEL = re.compile(r"\b(L1|L2): (\d+) bus lock exits\b")
_DESIGN = re.compile(r"\bdesign: (\d+) bus lock exits, (\d+) completed\b")


@dataclass(frozen=True)
class ModelCounts:
    exits: int  # #VMEXIT(BUSLOCK) the model delivered
    passes: int  # bus locks it let run (counter above zero)

    def to_json(self) -> dict[str, int]:
        return {"exits": self.exits, "let_through": self.passes}


@dataclass(frozen=True)
class Reported:
    """What the guest's programs printed: exits per program and completions."""

    exits: dict[str, int]  # "kvm_buslock_test L1" -> 16, "design ..." -> 2
    completed: int  # locked operations the guest completed after an exit or through the count

    @property
    def total_exits(self) -> int:
        return sum(self.exits.values())


def read_trace(path: Path) -> ModelCounts | None:
    """The model's counts from QEMU's trace file; None if there is no trace at all."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    exits = passes = 0
    for line in text.splitlines():
        if _EXIT.search(line):
            exits += 1
        elif _PASS.search(line):
            passes += 1
    return ModelCounts(exits, passes)


def reported(outputs: dict[str, list[str]]) -> Reported:
    """Counts printed by each program (test name -> its output lines).

    Each exit kvm_buslock_test counts is followed by exactly one completion of
    that instruction (its value checks hold it to that), so its completions
    equal its exits; a design check prints its completions itself.
    """
    exits: dict[str, int] = {}
    completed = 0
    for test, lines in outputs.items():
        for line in lines:
            level = _LEVEL.search(line)
            design = _DESIGN.search(line)
            if level:
                n = int(level.group(2))
                exits[f"{test} {level.group(1)}"] = n
                completed += n
            elif design:
                exits[test] = int(design.group(1))
                completed += int(design.group(2))
    return Reported(exits, completed)


def judge(counts: ModelCounts | None, seen: Reported) -> tuple[Status, str]:
    """PASS when the model's exits and let-throughs equal what the programs saw."""
    if counts is None:
        return Status.FAIL, "the emulator wrote no trace: its counts are unknown"
    parts = ", ".join(f"{k} {v}" for k, v in sorted(seen.exits.items())) or "none"
    said = (f"model: {counts.exits} exits, {counts.passes} let through; "
            f"tests: {seen.total_exits} exits ({parts}), {seen.completed} completed")
    if counts.exits == 0 and seen.total_exits == 0:
        return Status.FAIL, f"{said}: no bus lock exit happened at all"
    if counts.exits != seen.total_exits or counts.passes != seen.completed:
        return Status.FAIL, f"{said}: they differ"
    return Status.PASS, said


def emulated_by(emulator: Mapping[str, str]) -> str:
    """"<model> on QEMU <version>" for a host on kseries' model, "" for any other."""
    if not emulator.get("patch"):  # the machine's QEMU: no model of the feature
        return ""
    return f"{emulator.get('model', 'a CPU model')} on QEMU {emulator.get('qemu', '?')}"


def counted(model: Mapping[str, int]) -> str:
    """What the model says it did, in words."""
    return (f"{model.get('exits', 0)} bus lock exits delivered, "
            f"{model.get('let_through', 0)} bus locks let through")
