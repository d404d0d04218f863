"""The check report: a patch x check table of PASS / WARN / FAIL, and its verdict.

Row 0 is the cover letter and the series as a whole; rows 1..n are the patches.
FAIL is a finding (exit 2). WARN is advice shown with the result but not a
finding (e.g. checkpatch ``CHECK:`` lines, a series not addressed yet). SKIP
says why a check did not run and what makes it run. ERROR means the tool or its
environment failed (exit 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kseries.base.bases import Base
from kseries.build.profiles import Profile
from kseries.check import verdict
from kseries.render.manifest import Manifest

PASS, WARN, FAIL, SKIP, ERROR = "PASS", "WARN", "FAIL", "SKIP", "ERROR"
STATUSES = (PASS, WARN, FAIL, SKIP, ERROR)
# When one check reports several things for one row, the worst one shows.
_RANK = {PASS: 0, SKIP: 1, WARN: 2, FAIL: 3, ERROR: 4}

EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS = 0, 1, 2


@dataclass(frozen=True)
class Cell:
    check: str
    row: int  # 0 = cover letter / series, 1..n = patch number
    status: str
    reason: str = ""
    details: tuple[str, ...] = ()  # e.g. checkpatch's lines, the missing addresses

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "row": self.row, "status": self.status,
                "reason": self.reason, "details": list(self.details)}


@dataclass
class Report:
    base: Base
    source: str  # what was checked: "rendered for debian:6.12", a directory, an mbox
    own: bool  # kseries' own series (checked against the manifest)
    rows: list[str]  # row labels: row 0 then "1: subject" ...
    checks: list[str]  # the checks run, in order
    cells: list[Cell] = field(default_factory=list)
    tip: str = ""  # the series' tip commit (rendered, or from git am)
    seconds: dict[str, float] = field(default_factory=dict)
    manifest: Manifest | None = None  # kseries' own series: its name and version
    profiles: tuple[Profile, ...] = ()  # what the build checks built with

    def add(self, cell: Cell) -> None:
        self.cells.append(cell)

    def cell(self, check: str, row: int) -> Cell | None:
        """The worst result of ``check`` on ``row``, or None if it said nothing there."""
        found = [c for c in self.cells if c.check == check and c.row == row]
        if not found:
            return None
        return max(found, key=lambda c: _RANK[c.status])

    def of(self, check: str) -> list[Cell]:
        """The cells of ``check``; "build" also gives those of its columns ("build:kvm-x86")."""
        return [c for c in self.cells if c.check == check or c.check.startswith(check + ":")]

    def worst(self, check: str) -> str:
        found = [c.status for c in self.of(check)]
        return max(found, key=lambda s: _RANK[s]) if found else SKIP

    @property
    def status(self) -> str:
        """verdict's word: "error", "findings" or "pass"."""
        statuses = {c.status for c in self.cells}
        if ERROR in statuses:
            return verdict.ERROR
        if FAIL in statuses:
            return verdict.FINDINGS
        return verdict.PASS

    @property
    def exit_code(self) -> int:
        return {verdict.ERROR: EXIT_ERROR, verdict.FINDINGS: EXIT_FINDINGS}.get(
            self.status, EXIT_CLEAN)

    def problems(self) -> list[Cell]:
        """Every cell that is not a plain PASS, in table order."""
        order = {name: i for i, name in enumerate(self.checks)}
        cells = [c for c in self.cells if c.status != PASS]
        return sorted(cells, key=lambda c: (c.row, order.get(c.check, 99)))

    def table(self) -> list[list[str]]:
        """Header row, then one row per mail: label and one status per check."""
        out = [["", *self.checks]]
        for i, label in enumerate(self.rows):
            line = [label]
            for check in self.checks:
                c = self.cell(check, i)
                line.append(c.status if c else "-")
            out.append(line)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "kseries_report": 1,
            "status": self.status,
            "exit_code": self.exit_code,
            "base": {"label": self.base.label, "commit": self.base.commit,
                     "describe": self.base.describe},
            "series": {"source": self.source, "own": self.own, "tip": self.tip,
                       "rows": self.rows,
                       "name": self.manifest.name if self.manifest else "",
                       "version": self.manifest.version if self.manifest else 0,
                       "prefix": self.manifest.prefix if self.manifest else ""},
            # the build matrix's columns have no time of their own: "built" has the matrix's
            "checks": {name: {"status": self.worst(name),
                              **({"seconds": round(self.seconds[name], 2)}
                                 if name in self.seconds else {})}
                       for name in self.checks},
            "cells": [c.to_json() for c in self.cells],
            "built": {"profiles": [_profile_json(p) for p in self.profiles],
                      "seconds": round(self.seconds.get("build", 0.0), 2),
                      "patches": [self._patch_json(row) for row in range(1, len(self.rows))]},
        }

    def _patch_json(self, row: int) -> dict[str, Any]:
        found = {name: self.cell(name, row) for name in self.checks}
        return {"row": row, "label": self.rows[row],
                "results": {name: {"status": c.status, "reason": c.reason}
                            for name, c in found.items() if c is not None}}


def _profile_json(p: Profile) -> dict[str, Any]:
    return {"name": p.name, "description": p.description, "base_target": p.base_target,
            "fragments": [f.name for f in p.fragments], "options": dict(p.options),
            "arch": p.arch or "x86_64",
            "targets": list(p.targets)}


@dataclass(frozen=True)
class Record:
    """A saved check report read back: what submit reports of the builds and checks."""

    status: str  # verdict's word
    tip: str
    rows: tuple[str, ...]
    checks: dict[str, str]  # check -> worst status
    cells: tuple[Cell, ...]
    profiles: tuple[dict[str, Any], ...]

    def cell(self, check: str, row: int) -> Cell | None:
        found = [c for c in self.cells if c.check == check and c.row == row]
        return max(found, key=lambda c: _RANK.get(c.status, 0)) if found else None


def load_record(base: Base, tip: str) -> Record | None:
    """The last check of ``tip`` on ``base`` as saved for submit, or None if there is none."""
    data = verdict.load(base, tip)
    if data is None:
        return None
    series = data.get("series") or {}
    checks = {k: str(v.get("status", "")) for k, v in (data.get("checks") or {}).items()}
    cells = tuple(Cell(str(c.get("check", "")), int(c.get("row", 0)), str(c.get("status", "")),
                       str(c.get("reason", "")), tuple(c.get("details", ())))
                  for c in data.get("cells", []))
    built = data.get("built") or {}
    return Record(str(data.get("status", verdict.ERROR)), str(series.get("tip", tip)),
                  tuple(series.get("rows", ())), checks, cells,
                  tuple(built.get("profiles", ())))


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def save_verdict(report: Report) -> Path | None:
    """Where submit finds it: keyed by base and tip. None when there is no tip."""
    if not report.tip:
        return None
    return verdict.save(report.base, report.tip, report.to_json())
