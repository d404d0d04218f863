"""Kernel splats in a guest's log: found, attributed to a test, compared with the base.

A splat is what the kernel prints when something went wrong without stopping
it: a WARNING, a BUG, a KASAN or UBSAN report, lockdep's reports (a possible
circular locking dependency, suspicious RCU usage, ...), an RCU stall, a hung
task, a soft lockup, an Oops. run-tests brackets each test in the kernel log
("kseries-test: start N NAME" / "end N NAME rc=RC"), so each splat is the
test's that was running when the kernel printed it (or the last one to end,
for what the kernel noticed late, like a hung task).

A splat is known by its identity: its title without the numbers that move
between kernels and runs (CPU, PID, line numbers, offsets, addresses), so a
WARNING at svm.c line 1234 on the base and line 1250 on the series is the same
one. A splat whose identity the series' kernel prints and the base's never
does is a regression, even if its test passed; ``[[splat_allowlist]]`` in the
inventory names what a host kind prints whatever the kernel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kseries.run.suite import AllowedSplat

BOOT = "(boot)"  # printed before the first test started
MARKER = re.compile(r"kseries-test: (start|end) \d+ (\S+)")
_STAMP = re.compile(r"^(?:<\d+>)?\[\s*\d+\.\d+\]\s?")
CONTEXT = 20  # lines kept after a splat's title

# (kind, title pattern), tried in order on each line of the log.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((k, re.compile(p)) for k, p in (
    ("KASAN", r"BUG: KASAN: .*"),
    ("UBSAN", r"UBSAN: .*"),
    ("lockdep", r"WARNING: (?:possible circular locking dependency detected|possible recursive "
     r"locking detected|inconsistent lock state|suspicious RCU usage|bad unlock balance "
     r"detected|lock held when returning to user space|held lock freed|"
     r"possible irq lock inversion dependency detected).*"),
    ("RCU stall", r"rcu: INFO: .*detected stalls? on CPUs?.*|rcu: INFO: .*self-detected stall.*"),
    ("hung task", r"INFO: task \S+ blocked for more than \d+ seconds.*"),
    ("soft lockup", r"watchdog: BUG: soft lockup.*"),
    ("hard lockup", r"watchdog: .*hard LOCKUP.*|NMI watchdog: .*hard LOCKUP.*"),
    ("WARNING", r"WARNING: CPU: \d+ PID: \d+ at .*"),
    ("BUG", r"kernel BUG at .*|BUG: .*"),
    ("Oops", r"Oops: .*|general protection fault.*"),
))
_MOVES = (
    (re.compile(r"CPU: \d+ PID: \d+"), ""),  # which CPU and task
    (re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+"), ""),  # offset/size of a code address
    (re.compile(r"0x[0-9a-f]+|\b[0-9a-f]{8,16}\b"), "ADDR"),  # addresses and values
    (re.compile(r"(\.[chS]):\d+"), r"\1"),  # a line number in a source file
    (re.compile(r"(INFO: task \S+?):\d+"), r"\1"),  # the hung task's pid
    (re.compile(r"\b\d+\b"), "N"),  # what is left: counts, seconds, CPU numbers
)


@dataclass(frozen=True)
class Splat:
    kind: str
    title: str  # the line as printed, without its timestamp
    identity: str  # the title without what moves between kernels and runs
    test: str  # the test running when it was printed (BOOT before the first one)
    during: bool  # printed while the test ran (False: after it ended, before the next)
    lines: tuple[str, ...]  # the title and the lines after it

    @property
    def where(self) -> str:
        if self.test == BOOT:
            return "during boot, before the first test"
        return f"during {self.test}" if self.during else f"after {self.test} ended"


def identity(kind: str, title: str, detail: str = "") -> str:
    text = f"{title} {detail}".strip()
    for pattern, repl in _MOVES:
        text = pattern.sub(repl, text)
    return f"{kind}: {' '.join(text.split())}"


def _detail(kind: str, after: Sequence[str]) -> str:
    """What tells two lockdep reports apart: their first source line (file, function)."""
    if kind != "lockdep":
        return ""
    for line in after[:8]:
        if re.search(r"\S+\.[chS]:\d+", line):
            return line.strip()
    return ""


def _before(lines: Sequence[str], i: int) -> list[str]:
    """What a WARN() printed above its title: from the "cut here" line, its message."""
    for j in range(i - 1, max(i - 4, -1), -1):
        if MARKER.search(lines[j]):
            return []
        if "[ cut here ]" in lines[j]:
            return [ln.strip() for ln in lines[j + 1:i]]
    return []


def scan(log: str) -> list[Splat]:
    """Every splat in a kernel log (dmesg or a console), attributed by the test markers."""
    lines = [_STAMP.sub("", ln.rstrip("\r")) for ln in log.splitlines()]
    out: list[Splat] = []
    test, during = BOOT, False
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if m:
            test, during = m.group(2), m.group(1) == "start"
            continue
        text = line.strip()
        for kind, pattern in PATTERNS:
            hit = pattern.search(text)
            if hit is None:
                continue
            title = text[hit.start():]
            after = [ln for ln in lines[i + 1:i + 1 + CONTEXT] if not MARKER.search(ln)]
            out.append(Splat(kind, title, identity(kind, title, _detail(kind, after)), test,
                             during, (*_before(lines, i), title, *after)))
            break
    return out


def allowed(splat: Splat, allowlist: Iterable[AllowedSplat], kinds: Sequence[str]) -> str:
    """The reason the allowlist gives for ``splat`` on a host of ``kinds``, or ""."""
    for entry in allowlist:
        if entry.kinds and not set(entry.kinds) & set(kinds):
            continue
        if entry.pattern.search(splat.title):
            return entry.reason
    return ""


@dataclass
class SplatComparison:
    """The splats of one host: each identity the series printed, against the base."""

    new: list[Splat] = field(default_factory=list)  # the series' kernel alone printed them
    same: list[Splat] = field(default_factory=list)  # both kernels printed them
    gone: list[Splat] = field(default_factory=list)  # only the base's kernel printed them
    allowed: list[tuple[Splat, str]] = field(default_factory=list)  # with the reason

    @property
    def regressions(self) -> list[Splat]:
        return self.new


def compare(base: Sequence[Splat], series: Sequence[Splat],
            allowlist: Iterable[AllowedSplat] = (), kinds: Sequence[str] = ()) -> SplatComparison:
    """Sort the splats of every round on each kernel by identity (first of each kept)."""
    allowlist = tuple(allowlist)
    out = SplatComparison()
    base_ids = {s.identity for s in base}
    series_ids = {s.identity for s in series}
    seen: set[str] = set()
    for s in series:
        if s.identity in seen:
            continue
        seen.add(s.identity)
        why = allowed(s, allowlist, kinds)
        if why:
            out.allowed.append((s, why))
        elif s.identity in base_ids:
            out.same.append(s)
        else:
            out.new.append(s)
    for s in base:
        if s.identity not in series_ids and s.identity not in seen:
            seen.add(s.identity)
            why = allowed(s, allowlist, kinds)
            if why:
                out.allowed.append((s, why))
            else:
                out.gone.append(s)
    return out
