"""The KVM selftest suite as data, and one test's results on the base beside the series'.

The inventory (kselftest/hosts.toml) names subsets of the suite (``[suites]``;
``smoke`` is the inventory's smoke tests unless redefined; ``all`` is every x86
KVM selftest the base builds, read from its selftest makefile), the failures
known per host kind (``[known_failures.<kind>]``, with the reason and the
test's own failure line), tests that need a timeout of their own
(``[test_timeouts]``), tests known to be flaky on a host kind
(``[flaky.<kind>]``, with the reason) and kernel messages a host kind prints
whatever the kernel (``[[splat_allowlist]]``, read by splats.py).

``compare`` sorts one test's results (one per round, on each kernel) into
same / regression / fixed / flaky / changed. Only a regression fails a run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kseries.errors import KseriesError
from kseries.run import inventory
from kseries.run.ktap import Status

ALL = "all"
SMOKE = "smoke"
FAILING = (Status.FAIL, Status.ERROR)
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")


@dataclass(frozen=True)
class KnownFailure:
    test: str
    reason: str  # why it fails there, e.g. "TCG does not emulate NRIPS"
    line: str  # the test's own failure line, as it prints it there

    def explains(self, failure: str) -> bool:
        """Whether ``failure`` (what a result says) shows this one's line, numbers aside."""
        return not self.line or _shape(self.line) in _shape(failure)


@dataclass(frozen=True)
class AllowedSplat:
    pattern: re.Pattern[str]  # matched against the splat's title line
    reason: str
    kinds: tuple[str, ...]  # host kinds (or names) it applies to; () = every host


@dataclass(frozen=True)
class SuiteConfig:
    path: Path
    suites: dict[str, tuple[str, ...]]
    known: dict[str, dict[str, KnownFailure]]  # host kind or name -> test -> failure
    timeouts: dict[str, int]  # test -> seconds, where the default is not enough
    allowlist: tuple[AllowedSplat, ...] = ()
    flaky: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> test -> reason
    reruns: int = 2  # times a series-only failure runs again on both kernels ([tests] reruns)

    def names(self) -> list[str]:
        return [ALL, *self.suites]

    def known_failure(self, kinds: Sequence[str], test: str) -> KnownFailure | None:
        """The known failure of ``test`` on a host of any of ``kinds`` (its kind, its name)."""
        for kind in kinds:
            hit = self.known.get(kind, {}).get(test)
            if hit is not None:
                return hit
        return None

    def flaky_reason(self, kinds: Sequence[str], test: str) -> str:
        """Why ``test`` is known to be flaky on a host of ``kinds``, or ""."""
        return next((self.flaky[k][test] for k in kinds if test in self.flaky.get(k, {})), "")

    def select(self, name: str, built: Sequence[str]) -> list[str]:
        """The tests of suite ``name``, in the order the base lists them where it does.

        ``built`` is every test the base builds. A suite naming a test the base
        does not build is an error, as is an unknown suite.
        """
        if name == ALL:
            return list(built)
        if name not in self.suites:
            raise KseriesError(f"--suite {name!r}: no such suite",
                               hint=f"suites: {', '.join(self.names())} ({self.path})")
        return check_built(self.suites[name], built, f"suite {name} ({self.path})")


def check_built(tests: Sequence[str], built: Sequence[str], where: str) -> list[str]:
    """``tests`` unchanged, once each, if the base builds every one of them."""
    missing = [t for t in tests if t not in built]
    if missing:
        raise KseriesError(f"{where}: the base does not build {', '.join(missing)}",
                           hint="name tests of the base's KVM selftest makefile "
                           f"({len(built)} tests, e.g. {', '.join(list(built)[:3])})")
    return list(dict.fromkeys(tests))


def load_config(path: Path, smoke: Sequence[str]) -> SuiteConfig:
    """The suite tables of the inventory at ``path``; ``smoke`` is its [tests] smoke list."""
    return parse_config(inventory.read_toml(path), path, smoke)


def parse_config(data: dict[str, Any], path: Path, smoke: Sequence[str]) -> SuiteConfig:
    suites: dict[str, tuple[str, ...]] = {SMOKE: tuple(smoke)}
    for name, tests in _table(data, "suites", path).items():
        if name == ALL:
            raise KseriesError(f"{path}: [suites] cannot redefine {ALL!r}",
                               hint="it is every test the base builds")
        suites[name] = tuple(_strings(tests, path, f"suites.{name}"))
    known: dict[str, dict[str, KnownFailure]] = {}
    for kind, tests in _table(data, "known_failures", path).items():
        known[kind] = {}
        for test, entry in _as_table(tests, path, f"known_failures.{kind}").items():
            where = f"known_failures.{kind}.{test}"
            e = _as_table(entry, path, where)
            if not isinstance(e.get("reason"), str) or not e["reason"]:
                raise KseriesError(f"{path}: {where} needs a reason")
            known[kind][test] = KnownFailure(test, e["reason"], str(e.get("line", "")))
    timeouts = {}
    for test, seconds in _table(data, "test_timeouts", path).items():
        if not isinstance(seconds, int) or seconds <= 0:
            raise KseriesError(f"{path}: test_timeouts.{test} must be a positive number "
                               "of seconds")
        timeouts[test] = seconds
    allow = []
    for n, entry in enumerate(data.get("splat_allowlist", []), start=1):
        where = f"[[splat_allowlist]] {n}"
        e = _as_table(entry, path, where)
        if not isinstance(e.get("match"), str) or not isinstance(e.get("reason"), str):
            raise KseriesError(f"{path}: {where} needs match and reason (strings)")
        try:
            pattern = re.compile(e["match"])
        except re.error as exc:
            raise KseriesError(f"{path}: {where}: match is not a regular expression "
                               f"({exc})") from exc
        allow.append(AllowedSplat(pattern, e["reason"],
                                  tuple(_strings(e.get("hosts", []), path, f"{where} hosts"))))
    flaky: dict[str, dict[str, str]] = {}
    for kind, tests in _table(data, "flaky", path).items():
        flaky[kind] = {}
        for test, why in _as_table(tests, path, f"flaky.{kind}").items():
            if not isinstance(why, str) or not why:
                raise KseriesError(f"{path}: flaky.{kind}.{test} must be its reason (a string)")
            flaky[kind][test] = why
    reruns = _as_table(data.get("tests", {}), path, "tests").get("reruns", 2)
    if not isinstance(reruns, int) or isinstance(reruns, bool) or reruns < 0:
        raise KseriesError(f"{path}: [tests] reruns must be a whole number, 0 or more",
                           hint="e.g. reruns = 2 (0: a failure is judged as it came)")
    return SuiteConfig(path, suites, known, timeouts, tuple(allow), flaky, reruns)


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    return _as_table(data.get(key, {}), path, key)


def _as_table(value: Any, path: Path, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KseriesError(f"{path}: {key} must be a table")
    return value


def _strings(value: Any, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KseriesError(f"{path}: {key} must be a list of strings")
    return list(value)


class Verdict(StrEnum):
    SAME = "same"  # pass on both, or the same failure or skip on both
    REGRESSION = "regression"  # passed or skipped on the base, fails on the series
    FIXED = "fixed"  # failed on the base, passes (or skips) on the series
    FLAKY = "flaky"  # its result changes between rounds on one kernel
    CHANGED = "changed"  # a pass became a skip or the other way round: shown, not failing
    NOT_COMPARED = "not compared"  # it ran on one kernel only


@dataclass(frozen=True)
class Result:
    """One round of one test on one kernel."""

    status: Status
    reason: str = ""
    output: tuple[str, ...] = ()
    seconds: float = 0.0
    rerun: bool = False  # a rerun of a series-only failure (suitejudge), not a round

    @property
    def failure(self) -> str:
        """What the test said failed: the line under a KVM selftest's "Test Assertion
        Failure" banner (file:line: the expression) where it printed one, else the reason."""
        for i, line in enumerate(self.output):
            if "Test Assertion Failure" in line:
                rest = [ln.strip() for ln in self.output[i + 1:i + 3] if ln.strip()]
                if rest:
                    return rest[0]
        return self.reason

    @property
    def text(self) -> str:
        """Everything the result says: its reason and the test's output."""
        return "\n".join((self.reason, *self.output))


@dataclass
class Comparison:
    test: str
    verdict: Verdict
    base: list[Result]
    series: list[Result]
    why: str  # in words, e.g. "fails as expected on tcg-amd (TCG does not emulate NRIPS)"
    known: KnownFailure | None = None
    splats: list[str] = field(default_factory=list)  # new kernel messages during it

    @property
    def fails_run(self) -> bool:
        return self.verdict is Verdict.REGRESSION


def rate(results: Sequence[Result], good: tuple[Status, ...] = (Status.PASS,)) -> str:
    hits = sum(r.status in good for r in results)
    return f"{hits}/{len(results)}"


def _fails(results: Sequence[Result]) -> list[Result]:
    return [r for r in results if r.status in FAILING]


def _shape(text: str) -> str:
    """A failure line with its numbers blanked: values that move between runs."""
    return " ".join(_NUMBER.sub("N", text).split())


def compare(test: str, base: Sequence[Result], series: Sequence[Result],
            known: KnownFailure | None = None, kind: str = "", flaky: str = "") -> Comparison:
    """Sort one test by its rounds on the unpatched base and on the series.

    ``flaky``: why the test is known to be flaky on this host kind. Its failure on
    the series alone is then FLAKY, unless it failed in every one of two or more
    rounds there.
    """
    b, s = list(base), list(series)
    if not b or not s:
        where = "the series" if not b else "the base"
        return Comparison(test, Verdict.NOT_COMPARED, b, s, f"ran on {where} only")
    b_fail, s_fail = _fails(b), _fails(s)
    b_states = {r.status for r in b}
    s_states = {r.status for r in s}
    if s_fail and not b_fail and flaky and (len(s) == 1 or len(s_fail) < len(s)):
        return Comparison(test, Verdict.FLAKY, b, s,
                          f"known to be flaky on {kind} ({flaky}): pass rate {rate(b)} on the "
                          f"base, {rate(s)} on the series ({s_fail[0].failure})")
    if s_fail and not b_fail and known is not None and known.line and all(
            r.status is Status.FAIL and known.explains(r.text) for r in s_fail):
        # A known failure that passed on the base this time: the host's failure, which
        # comes and goes (a timing test under TCG), not the series'.
        return Comparison(test, Verdict.FLAKY, b, s,
                          f"fails as expected on {kind} ({known.reason}) on the series, and "
                          f"passed on the base this time: pass rate {rate(b)} on the base, "
                          f"{rate(s)} on the series", known)
    if s_fail and not b_fail:
        first = s_fail[0]
        how = "fails" if len(s_fail) == len(s) else f"fails {len(s_fail)} of {len(s)} rounds"
        return Comparison(test, Verdict.REGRESSION, b, s,
                          f"{how} on the series ({first.status}: {first.failure}); "
                          f"{'/'.join(sorted(b_states))} on the base in {len(b)} of {len(b)}")
    if len(b_states) > 1 or len(s_states) > 1:
        return Comparison(test, Verdict.FLAKY, b, s,
                          f"pass rate {rate(b)} on the base, {rate(s)} on the series")
    (b_one,), (s_one,) = b_states, s_states
    if flaky and b_one != s_one:
        return Comparison(test, Verdict.FLAKY, b, s, f"known to be flaky on {kind} ({flaky}): "
                          f"{b_one} on the base, {s_one} on the series")
    if b_fail and not s_fail:
        return Comparison(test, Verdict.FIXED, b, s, f"{b_one} on the base, {s_one} on the "
                          "series")
    if b_fail:
        shapes_b = {_shape(r.failure) for r in b_fail}
        shapes_s = {_shape(r.failure) for r in s_fail}
        if shapes_b != shapes_s or b_one != s_one:
            return Comparison(test, Verdict.REGRESSION, b, s,
                              f"fails differently on the series ({s_fail[0].failure}) than on "
                              f"the base ({b_fail[0].failure})", known)
        reason = s_fail[0].failure
        if known is not None and known.explains(s_fail[0].text):
            return Comparison(test, Verdict.SAME, b, s, f"fails as expected on {kind} "
                              f"({known.reason}) on both", known)
        return Comparison(test, Verdict.SAME, b, s, f"fails the same way on both: {reason}")
    if b_one != s_one:
        return Comparison(test, Verdict.CHANGED, b, s, f"{b_one} on the base, {s_one} on the "
                          "series")
    detail = f" ({s[0].reason})" if s_one is Status.SKIP and s[0].reason else ""
    return Comparison(test, Verdict.SAME, b, s, f"{s_one} on both{detail}")


def confirm(c: Comparison, base: Sequence[Result], series: Sequence[Result],
            kind: str = "", flaky: str = "") -> Comparison:
    """The regression ``c`` once its test ran again alone on both kernels (``base`` and
    ``series``: those reruns). It stays a regression when the reruns show it too (the
    test fails again on the series, never on the base); otherwise it did not
    reproduce and is FLAKY. Either way every result is kept, the reruns marked."""
    again = compare(c.test, base, series, c.known, kind, flaky)
    b = [*c.base, *(dataclasses.replace(r, rerun=True) for r in base)]
    s = [*c.series, *(dataclasses.replace(r, rerun=True) for r in series)]
    n = len(series)
    if again.verdict is Verdict.REGRESSION:
        return dataclasses.replace(c, base=b, series=s, why=(
            f"{c.why}; run again alone {n} time(s) on each kernel: failed "
            f"{len(_fails(series))} of {n} on the series, passed {rate(base)} on the base"))
    return dataclasses.replace(c, verdict=Verdict.FLAKY, base=b, series=s, why=(
        f"did not fail again: {c.why}; then run again alone {n} time(s) on each kernel: "
        f"pass rate {rate(base)} on the base, {rate(series)} on the series"))


def counts(comparisons: Sequence[Comparison]) -> dict[str, int]:
    """How many tests fell in each verdict, in the verdicts' order, none left out."""
    return {v.value: sum(c.verdict is v for c in comparisons) for v in Verdict}
