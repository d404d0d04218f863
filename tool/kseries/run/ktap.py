"""KTAP (the kernel's test output format, v1; TAP 13 headers accepted).

``parse`` reads a KTAP document, tolerating lines that are not KTAP (kernel
messages on a serial console); ``emit`` writes one. Nested subtests are
indented by four spaces, as kselftest and KUnit write them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from kseries.errors import KseriesError


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"  # the test could not run to a result (timeout, crash)


DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")
_VERSION = re.compile(r"^(?:KTAP version 1|TAP version 1[34])\s*$")
_PLAN = re.compile(r"^1\.\.(\d+)\s*$")
_RESULT = re.compile(r"^(not ok|ok)\s+(\d+)\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(.*))?$")
_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")


@dataclass
class TestResult:
    number: int
    name: str
    ok: bool
    directive: str = ""  # SKIP, TODO, XFAIL, TIMEOUT, ERROR or "" (none)
    reason: str = ""  # text after the directive, or the comment of a result without one
    diagnostics: list[str] = field(default_factory=list)  # "# " lines before the result
    subtests: list[TestResult] = field(default_factory=list)

    @property
    def status(self) -> Status:
        if self.directive == "SKIP":
            return Status.SKIP
        if self.directive in ("TIMEOUT", "ERROR"):
            return Status.ERROR
        if self.directive in ("TODO", "XFAIL"):  # an expected failure is not a failure
            return Status.PASS
        return Status.PASS if self.ok else Status.FAIL


@dataclass
class Document:
    plan: int | None
    results: list[TestResult]
    version_seen: bool

    def by_name(self) -> dict[str, TestResult]:
        return {r.name: r for r in self.results}


def parse(text: str, *, strict: bool = False) -> Document:
    """Parse KTAP. With ``strict``, a missing header, a plan that disagrees with
    the results, or an out-of-order test number raises KseriesError."""
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    doc, _ = _parse_level(lines, 0, "")
    if strict:
        validate(doc)
    return doc


def validate(doc: Document) -> None:
    """Raise KseriesError unless ``doc`` is well-formed KTAP at every level."""
    if not doc.version_seen:
        raise KseriesError("KTAP: no 'KTAP version 1' header")
    _validate_results(doc.plan, doc.results, "top level")


def _validate_results(plan: int | None, results: list[TestResult], where: str) -> None:
    if plan is None:
        raise KseriesError(f"KTAP: no plan line at {where}")
    if plan != len(results):
        raise KseriesError(f"KTAP: plan says {plan} tests, found {len(results)} at {where}")
    for i, r in enumerate(results, 1):
        if r.number != i:
            raise KseriesError(f"KTAP: test {r.name!r} numbered {r.number}, expected {i}")
        if r.subtests:
            _validate_results(len(r.subtests), r.subtests, r.name)


def _parse_level(lines: list[str], start: int, indent: str) -> tuple[Document, int]:
    plan: int | None = None
    results: list[TestResult] = []
    pending: list[str] = []
    subtests: list[TestResult] = []
    version_seen = False
    i = start
    while i < len(lines):
        raw = lines[i]
        if indent and not raw.startswith(indent):
            break
        line = raw[len(indent):]
        if line.startswith("    ") and _is_ktap_start(line[4:]):
            sub, i = _parse_level(lines, i, indent + "    ")
            subtests = sub.results
            continue
        i += 1
        if _VERSION.match(line):
            version_seen = True
            continue
        if m := _PLAN.match(line):
            plan = int(m.group(1))
            continue
        if m := _RESULT.match(line):
            directive, reason = _split_directive(m.group(4) or "")
            results.append(TestResult(
                number=int(m.group(2)), name=m.group(3).strip(), ok=m.group(1) == "ok",
                directive=directive, reason=reason, diagnostics=pending, subtests=subtests,
            ))
            pending, subtests = [], []
            continue
        if line.startswith("#"):
            pending.append(line[1:].removeprefix(" "))
            continue
        # Anything else (kernel messages on a console, blank lines) is not KTAP.
    return Document(plan, results, version_seen), i


def _is_ktap_start(line: str) -> bool:
    return bool(_VERSION.match(line) or _PLAN.match(line) or _RESULT.match(line))


def _split_directive(comment: str) -> tuple[str, str]:
    comment = comment.strip()
    word, _, rest = comment.partition(" ")
    if word.upper() in DIRECTIVES:
        return word.upper(), rest.strip()
    return "", comment


def strip_console_noise(text: str) -> str:
    """Drop kernel-log lines (``[    1.234] ...``) that a serial console mixes in."""
    return "\n".join(ln for ln in text.splitlines() if not _KERNEL_LINE.match(ln))


def emit(results: list[TestResult], *, indent: str = "", header: bool = True) -> str:
    """KTAP text for ``results`` (numbered in order), with their subtests nested."""
    out: list[str] = []
    if header:
        out.append(f"{indent}KTAP version 1")
    out.append(f"{indent}1..{len(results)}")
    for n, r in enumerate(results, 1):
        for d in r.diagnostics:
            out.append(f"{indent}# {d}".rstrip())
        if r.subtests:
            out.append(emit(r.subtests, indent=indent + "    ").rstrip("\n"))
        line = f"{indent}{'ok' if r.ok else 'not ok'} {n} {_clean_name(r.name)}"
        if r.directive:
            line += f" # {r.directive}"
            if r.reason:
                line += f" {_one_line(r.reason)}"
        elif r.reason:
            line += f" # {_one_line(r.reason)}"
        out.append(line)
    return "\n".join(out) + "\n"


def _clean_name(name: str) -> str:
    return re.sub(r"[\s#]+", "_", name.strip()) or "unnamed"


def _one_line(text: str) -> str:
    return " ".join(text.split())
