"""The cover letter's "Testing done" block, written from what ran on the tip.

Builds come from the check record, Runs from the run records that count; Not
tested lists what the kvm-x86 rules ask for (maintainer-kvm-x86.rst, "Testing")
that nothing covered. The author's own testing (``--testing-notes FILE``) is
printed as their statement. The block is wrapped at 75 columns, and the same
records give the same text.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.check.report import PASS, Record
from kseries.errors import KseriesError
from kseries.render.manifest import ALL_CHECKS, CheckRule
from kseries.render.series import NOT_RUN, PatchSummary
from kseries.run import model
from kseries.run.inventory import CHECK_MODEL
from kseries.run.records import HostRecord, RunRecord, TestRecord
from kseries.submit.evidence import Evidence
from kseries.submit.gate import State

WIDTH = 75
FEATURE_TEST = "kvm_buslock_test"
# A kvm_buslock_test KTAP line of its own: "ok 1 L1: 100 bus lock exits",
# "ok 2 # SKIP L2: the vCPU cannot run a nested guest".
_LEVEL = re.compile(r"^(ok|not ok) \d+ (?:# (SKIP) )?(L[12]: .+?)\s*$")
# Per patch, the check name and what the block calls it.
PATCH_CHECKS = (("build", "build"), ("warnings", "W=1"), ("sparse", "sparse"),
                ("htmldocs", "htmldocs"), ("checkpatch", "checkpatch --strict"))
OPTIONAL = ("sparse", "htmldocs")  # checks older records do not have: left out, not "not run"
BUILD_CHECKS = (("layout", "VMCB layout and constants (DWARF of a built object)"),
                ("selftest", f"{FEATURE_TEST} built static"))
AUTHOR = "The author's own testing, in their words (kseries did not run it):"


@dataclass(frozen=True)
class Inputs:
    evidence: Evidence
    states: tuple[State, ...]  # the gate's rules and the kvm-x86 wants, evaluated
    patches: tuple[PatchSummary, ...]
    base_describe: str
    author_notes: str = ""


def read_notes(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise KseriesError(f"--testing-notes {path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise KseriesError(f"--testing-notes {path}: not UTF-8 text") from exc
    if not text.strip():
        raise KseriesError(f"--testing-notes {path}: the file is empty",
                           hint="write what you tested by hand, or leave the option out")
    return text.strip("\n")


def item(text: str, indent: int = 0) -> list[str]:
    """A "- " list item wrapped at WIDTH, continued under its text."""
    lead = " " * indent
    return textwrap.wrap(text, WIDTH, initial_indent=lead + "- ",
                         subsequent_indent=lead + "  ", break_long_words=False,
                         break_on_hyphens=False)


def block(i: Inputs) -> str:
    ev = i.evidence
    out = ["Testing done:",
           *textwrap.wrap(f"What kseries' records show of this tip ({ev.tip[:12]}) on "
                          f"{i.base_describe}.", WIDTH, break_on_hyphens=False), ""]
    out += builds(ev.check, i.patches)
    out += ["", "Runs:"]
    hosts = ev.hosts()
    if not hosts:
        out += item("none: no `kseries run` results of this tip were given "
                    "(kseries submit --results DIR)")
    for run, h in hosts:
        out += host_lines(h) if run.suite is None else suite_host_lines(run, h)
    out += ["", "Not tested:"]
    for text in not_tested(i):
        out += item(text)
    if i.author_notes:
        out += ["", AUTHOR, *notes_lines(i.author_notes)]
    return "\n".join(out)


def builds(rec: Record | None, patches: Sequence[PatchSummary]) -> list[str]:
    if rec is None:
        return ["Builds:", *item("none: kseries check has not run on this tip")]
    out = [f"Builds (kseries check: {rec.status}):"]
    for p in rec.profiles:
        options = " ".join(f"{k}={v}" for k, v in (p.get("options") or {}).items())
        frags = ", ".join(p.get("fragments") or [])
        out += item(f"{p.get('name')} profile: {p.get('base_target')}"
                    + (f" + {frags}" if frags else "") + (f", {options}" if options else ""))
    total = len(patches)
    for patch in patches:
        parts = []
        for name, label in PATCH_CHECKS:
            columns = [k for k in rec.checks if k.startswith(name + ":")]
            if columns:  # the build matrix: one column per profile
                parts.append(matrix_part(rec, label, columns, patch.number))
                continue
            c = rec.cell(name, patch.number)
            if name not in rec.checks and name in OPTIONAL and not any(
                    k in rec.checks for k in OPTIONAL):
                continue
            if name not in rec.checks:
                parts.append(f"{label} not run")
            elif c is not None:
                parts.append(f"{label} {c.status}" + ("" if c.status == PASS else
                                                      f" ({c.reason})"))
        out += item(f"{patch.number}/{total} {patch.subject}: {', '.join(parts)}")
    for name, label in BUILD_CHECKS:
        c = rec.cell(name, 0)
        if name not in rec.checks:
            out += item(f"{label}: not run")
        elif c is not None:
            # a path on the checker's machine means nothing to the list: leave it out
            reason = re.sub(r":? /\S+$", "", c.reason)
            out += item(f"{label}: {c.status}" + (f" ({reason})" if reason else ""))
    return out


def matrix_part(rec: Record, label: str, columns: Sequence[str], row: int) -> str:
    """"build PASS in 6 profiles", or the profiles that did not pass, with why."""
    cells = {k.partition(":")[2]: rec.cell(k, row) or rec.cell(k, 0) for k in columns}
    ran = {p: c for p, c in cells.items() if c is not None and c.status != "SKIP"}
    skipped = sorted(p for p, c in cells.items() if c is not None and c.status == "SKIP")
    bad = [f"{p} {c.status} ({c.reason})" for p, c in ran.items() if c.status != PASS]
    text = (f"{label} PASS in {len(ran)} profiles" if not bad else
            f"{label} {', '.join(bad)}; PASS in {len(ran) - len(bad)} other profiles")
    return text + (f" (not applicable: {', '.join(skipped)})" if skipped else "")


def how(h: HostRecord) -> str:
    if h.transport == "qemu" and h.evidence == "emulated" and model.emulated_by(h.emulator):
        return f"EMULATED: {model.emulated_by(h.emulator)} under TCG, not silicon"
    if h.transport == "qemu":
        return f"qemu under {h.accel or 'an unknown accelerator'}"
    return {"ssh": "over ssh", "local": "on this machine"}.get(h.transport, h.transport)


def model_line(h: HostRecord) -> str:
    """The emulated CPU's own counts, and whether they equal what the tests saw."""
    check = h.test(CHECK_MODEL)
    counts = model.counted(h.model)
    if check is None:
        return f"the model counted {counts}"
    agree = "equal to the tests' counts" if check.actual == "PASS" else check.reason
    return f"the model counted {counts}: {agree}"


def host_lines(h: HostRecord) -> list[str]:
    cpu = " ".join(x for x in (h.seen.cpu_vendor, h.seen.cpu_model) if x) or h.vendor
    release = h.seen.kernel_release or "(release not seen)"
    kernel = (f"the series' kernel {release}" if h.built_kernel
              else f"its own kernel {release}, not the series'")
    out = item(f"{h.name} ({h.vendor}): {cpu}; {how(h)}; {kernel}")
    if h.infra_error:
        return out + item(f"did not finish: {h.infra_error}", 2)
    feature = h.test(FEATURE_TEST)
    if feature is not None:
        label = "EMULATED " if h.evidence == "emulated" and model.emulated_by(h.emulator) else ""
        out += item(label + feature_line(feature), 2)
    if h.model:
        out += item(model_line(h), 2)
    for t in (t for t in h.tests if t.kind == "design"):
        out += item(design_line(t), 2)
    checks = [t for t in h.tests if t.kind == "check" and t.name != CHECK_MODEL]
    if checks:
        out += item("kernel checks: " + ", ".join(_status(t) for t in checks), 2)
    smoke = [t for t in h.tests if t.kind == "smoke"]
    if smoke:
        against = all(t.against_baseline for t in smoke)
        lead = ("smoke tests, each against the same run on the unpatched base"
                if against else "smoke tests (no run on the unpatched base to compare)")
        out += item(f"{lead}: " + ", ".join(_status(t) for t in smoke), 2)
    return out


def design_line(t: TestRecord) -> str:
    """A kseries design check: not part of the series; a known difference says so."""
    lead = f"design check {t.name} (kseries' own, not in the series): {t.actual}"
    if t.ok and t.actual == "FAIL":
        return f"{lead}, as expected: {t.expected_reason}"
    if t.ok:
        return lead
    return f"{lead}, expected {'/'.join(t.expected)}: {t.reason}"


def suite_host_lines(run: RunRecord, h: HostRecord) -> list[str]:
    """A host of a suite run: the suite's counts against the base, its regressions by
    name, and the known failures it showed with why."""
    assert run.suite is not None
    head = host_lines(dataclasses.replace(h, tests=tuple(t for t in h.tests
                                                         if t.kind == "check")))
    s = run.suite.host(h.name)
    if s is None or h.infra_error:
        return head
    rounds = f", {run.suite.rounds} rounds on each kernel" if run.suite.rounds > 1 else ""
    counts = ", ".join(f"{k} {v}" for k, v in s.counts.items() if v)
    out = head + item(f"KVM selftests ({run.suite.name}: {run.suite.tests} tests{rounds}), "
                      f"each against the same run on the unpatched base: {counts}", 2)
    for test in s.regressions:
        out += item(f"regression: {test}", 4)
    for splat in s.splat_regressions:
        out += item(f"new kernel splat: {splat}", 4)
    for test, reason in s.known:
        out += item(f"{test} fails on both kernels, as expected on {s.kinds[0]}: {reason}", 4)
    for test, why in s.flaky:
        out += item(f"flaky, not counted as a regression: {test}: {why}", 4)
    return out


def _status(t: TestRecord) -> str:
    if t.ok or not t.against_baseline:
        return f"{t.name} {t.actual}"
    return f"{t.name} {t.actual} ({t.expected_reason})"


def levels(t: TestRecord) -> list[tuple[str, str]]:
    """(status, text) of each level kvm_buslock_test reported, e.g. ("PASS", "L1: ...")."""
    out = []
    for line in t.ktap:
        m = _LEVEL.match(line.strip())
        if m:
            status = "SKIP" if m.group(2) else ("PASS" if m.group(1) == "ok" else "FAIL")
            out.append((status, m.group(3)))
    return out


def feature_line(t: TestRecord) -> str:
    found = levels(t)
    if t.actual == "PASS":
        detail = "; ".join(text if s == "PASS" else f"{text} ({s})" for s, text in found)
        return f"{t.name} PASS" + (f": {detail}" if detail else "")
    return f"{t.name} {t.actual}" + (f": {t.reason}" if t.reason else "")


def not_tested(i: Inputs) -> list[str]:
    out = [_missing(s) for s in i.states if not s.met]
    rec = i.evidence.check
    if rec is not None:
        skipped = [label for name, label in (*PATCH_CHECKS, *BUILD_CHECKS)
                   if not _ran(rec, name)]
        if skipped:
            out.append(f"{', '.join(skipped)}: the last kseries check did not run them")
    nested = any(s == "PASS" and text.startswith("L2:")
                 for _, h in i.evidence.hosts() if h.built_kernel and not h.infra_error
                 for t in [h.test(FEATURE_TEST)] if t is not None and t.actual == "PASS"
                 for s, text in levels(t))
    if not nested:
        out.append("nested guests: kvm_buslock_test has not passed its L2 part on any host")
    files = [f for p in i.patches for f in p.files]
    if any(f.startswith("arch/x86/kvm/svm/") for f in files):
        out.append("SEV-ES and SEV-SNP guests: the series changes SVM code, and kseries "
                   "runs no SEV guest")
    out.append("KVM-unit-tests: kseries does not run them")
    docs = sorted({f for f in files if f.endswith(".rst")})
    status = rec.checks.get("htmldocs") if rec is not None else None
    if docs and status != PASS:
        why = ("no kseries check ran on this tip" if rec is None else
               "the last kseries check did not run it" if status is None else
               f"the htmldocs check gave {status} on this tip")
        out.append(f"make htmldocs for {', '.join(docs)}: {why}")
    return out


def _ran(rec: Record, name: str) -> bool:
    """The check ran: as one column, or as the columns of a matrix ("build:kvm-x86")."""
    columns = [s for k, s in rec.checks.items() if k.startswith(name + ":")]
    if columns:
        return any(s != "SKIP" for s in columns)
    return rec.checks.get(name) not in (None, "SKIP")


def _missing(s: State) -> str:
    if isinstance(s.rule, CheckRule):
        if s.rule.check == ALL_CHECKS:
            return f"the builds and checks of each patch ({s.found})"
        return f"kseries check's {s.rule.check} check ({s.found})"
    return f"{s.asks} ({s.found})"


def notes_lines(text: str) -> list[str]:
    """The author's lines as written; a line longer than WIDTH is wrapped under itself."""
    out: list[str] = []
    for line in text.splitlines():
        if len(line) <= WIDTH:
            out.append(line.rstrip())
            continue
        indent = len(line) - len(line.lstrip())
        lead = line[:indent]
        bullet = re.match(r"[-*] ", line.lstrip())
        out += textwrap.wrap(line.strip(), WIDTH, initial_indent=lead,
                             subsequent_indent=lead + ("  " if bullet else ""),
                             break_long_words=False, break_on_hyphens=False)
    return out


def put_into_cover(cover: Path, text: str) -> None:
    """Replace render's statement in the cover letter file with ``text``."""
    body = cover.read_text()
    if NOT_RUN not in body:
        raise KseriesError(f"{cover}: the cover letter has no Testing done placeholder",
                           hint="keep {{ testing }} in the cover letter template")
    cover.write_text(body.replace(NOT_RUN, text, 1))
