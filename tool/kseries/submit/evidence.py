"""What ran on the series being submitted: its check record and the runs of its tip.

The check record is the last `kseries check` of the tip on the base (saved in
the cache). Run results come from ``--results DIR`` (made here or in a lab).
A run counts only if it ran the series' kernel for the same base commit and
series tip; any other is left out, with the reason. A run whose tip is not
recorded (its kernel was not one `kseries build` recorded where it ran) still
counts when its kernel's sha256 is that of this machine's build of the tip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.base.bases import Base
from kseries.build import artifacts
from kseries.check import report as reports
from kseries.run import records
from kseries.run.identity import VM_PROFILE, sha256_of


@dataclass(frozen=True)
class LeftOut:
    path: Path
    reason: str


@dataclass(frozen=True)
class Evidence:
    base: Base
    tip: str
    check: reports.Record | None  # None: never checked
    runs: tuple[records.RunRecord, ...]  # the runs of this tip, in the order given
    left_out: tuple[LeftOut, ...]
    notes: tuple[str, ...] = ()  # how a run was matched, where it was not by its tip

    def hosts(self) -> list[tuple[records.RunRecord, records.HostRecord]]:
        """Every host of every run that counts, sorted by host name (stable output)."""
        pairs = [(run, h) for run in self.runs for h in run.hosts]
        return sorted(pairs, key=lambda p: (p[1].name, str(p[0].path)))


def gather(base: Base, tip: str, results: Sequence[records.RunRecord]) -> Evidence:
    """The check record of ``tip`` and, of ``results`` (``records.load``), the runs of it."""
    runs: list[records.RunRecord] = []
    left: list[LeftOut] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for run in results:
        if run.path.resolve() in seen:
            continue
        seen.add(run.path.resolve())
        why, note = _mismatch(run, base, tip)
        if why:
            left.append(LeftOut(run.path.parent, why))
            continue
        if note:
            notes.append(f"{run.path.parent}: {note}")
        runs.append(run)
    return Evidence(base, tip, reports.load_record(base, tip), tuple(runs), tuple(left),
                    tuple(notes))


def _mismatch(run: records.RunRecord, base: Base, tip: str) -> tuple[str, str]:
    """(why the run does not count, "" if it does; how it was matched)."""
    s = run.series
    if not run.patched or not s.patched:
        return "a run of the unpatched base's kernel (a baseline), not of the series", ""
    if s.base_commit and s.base_commit != base.commit:
        theirs = s.base_describe or s.base_label or "another base"
        return (f"its base is {theirs} ({s.base_commit[:12]}), not {base.describe} "
                f"({base.commit[:12]})"), ""
    if s.tip:
        if s.tip != tip:
            return f"its series tip is {s.tip[:12]}, not {tip[:12]}, the tip being sent", ""
        if not s.base_commit:
            return "its base commit is not recorded", ""
        return "", ""
    if s.kernel_sha256 and s.kernel_sha256 == _local_kernel_sha(base, tip):
        return "", ("its series tip is not recorded, but its kernel is this machine's "
                    f"build of {tip[:12]} (the same sha256)")
    return f"its series tip is not recorded ({s.how or 'no series in its summary'})", ""


def _local_kernel_sha(base: Base, tip: str) -> str:
    """The sha256 of this machine's vm kernel of ``tip``, "" if there is none."""
    built = artifacts.of_tip(base, VM_PROFILE, tip)
    if built is None or built.kernel is None or not built.kernel.is_file():
        return ""
    return sha256_of(built.kernel)
