"""A series directory's manifest (series.toml) as typed data.

A series is a directory: series.toml (this), the cover letter template,
changes/ (the edits of each logical change) and messages/ (the commit
messages). kseries ships two under templates/series/ (v2 and merged); a user
may point at a directory of their own with the same layout.

Its ``[[gate]]`` entries are the testing rules ``kseries submit`` holds the
series to (maintainer-kvm-x86.rst, "Testing"): a ``CheckRule`` names a
``kseries check`` check that must have passed on the tip being sent; a
``HostRule`` names a kind of host (vendor, a capability it declares) that must
have run a test on the series' kernel with a given result; a ``SuiteRule``
names a KVM selftest suite that must have run on the series' kernel and the
base's on a kind of host (or a host by name) with no regression. Without
``[[gate]]`` the rule is the whole check (``check = "all"``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kseries.errors import KseriesError


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    email: str

    @property
    def ident(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class Trailer:
    tag: str
    person: Person

    def __str__(self) -> str:
        return f"{self.tag}: {self.person.ident}"


@dataclass(frozen=True)
class Patch:
    number: int
    subject: str
    author: Person
    date: datetime
    message: str  # template name under the series' messages/
    changes: tuple[str, ...]  # change names under the series' changes/
    trailers: tuple[Trailer, ...]
    # The upstream commit that carries this patch ("" for a series never merged), and
    # trailers it gained on the way (a Reviewed-by given to the posting that was applied).
    upstream: str = ""
    upstream_trailers: tuple[Trailer, ...] = ()


@dataclass(frozen=True)
class Backport:
    """``[series.backport]``: how the series is sent to a stable or vendor tree."""

    cover: str  # the cover letter template of a backport
    notes: str  # the template of the adaptation notes, from the facts of the base


@dataclass(frozen=True)
class Changelog:
    version: str
    items: tuple[str, ...]


# `kseries check` builds every patch in each of these (templates/profiles/).
DEFAULT_MATRIX = ("kvm-x86",)
ALL_CHECKS = "all"  # CheckRule.check: the whole `kseries check` verdict
GATE_VENDORS = ("amd", "intel")
GATE_RESULTS = ("PASS", "FAIL", "SKIP")


@dataclass(frozen=True)
class CheckRule:
    """``kseries check`` of the tip passed: every check ("all"), or the one named."""

    check: str


@dataclass(frozen=True)
class HostRule:
    """A host of ``vendor`` declaring ``needs`` ran ``test`` on the series' kernel: ``result``."""

    vendor: str
    needs: str  # a capability of the host inventory, e.g. "bus_lock_threshold"
    result: str
    test: str = "kvm_buslock_test"
    evidence: str = "hardware"  # or "emulated": kseries' CPU model of the feature


@dataclass(frozen=True)
class SuiteRule:
    """``kseries run --suite`` ran ``suite`` on a host of kind (or name) ``on``: no regression."""

    suite: str  # "all", or a suite of the host inventory
    on: str  # a host kind ("tcg-amd": qemu under TCG, AMD) or a host's name


GateRule = CheckRule | HostRule | SuiteRule
EVIDENCE = ("hardware", "emulated")  # what kind of host a HostRule asks for
DEFAULT_GATE: tuple[GateRule, ...] = (CheckRule(ALL_CHECKS),)


@dataclass(frozen=True)
class Manifest:
    name: str
    subject_prefix: str
    rfc: bool
    version: int
    sender: Person
    cover: str
    cover_subject: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    changelog: tuple[Changelog, ...]
    links: dict[str, str]
    patches: tuple[Patch, ...]
    dir: Path  # the series directory
    id: str  # its name: keys the series' caches and records ("v2", "merged")
    gate: tuple[GateRule, ...] = DEFAULT_GATE
    path: Path | None = None  # the manifest file, for messages that name it
    matrix: tuple[str, ...] = DEFAULT_MATRIX  # build profiles every patch is built with
    backport: Backport | None = None  # None: the series was never merged upstream

    @property
    def prefix(self) -> str:
        """The subject prefix as it appears in brackets, e.g. "RFC PATCH v2"."""
        words = (["RFC"] if self.rfc else []) + [self.subject_prefix]
        if self.version > 1:
            words.append(f"v{self.version}")
        return " ".join(words)


def load(series: Path) -> Manifest:
    path = series / "series.toml"
    if not path.is_file():
        raise KseriesError(f"{series}: not a series directory (no series.toml)",
                           hint="give --series v2, merged, or a directory with the same layout")
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise KseriesError(f"{path}: cannot read the series manifest ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise KseriesError(f"{path}: invalid TOML ({exc})", hint="fix the manifest") from exc
    try:
        return _manifest(data, series)
    except KeyError as exc:
        raise KseriesError(
            f"{path}: missing key {exc}", hint="see the manifest's comments"
        ) from exc


def _manifest(data: dict, series: Path) -> Manifest:  # type: ignore[type-arg]
    path = series / "series.toml"
    people = {k: Person(k, v["name"], v["email"]) for k, v in data["people"].items()}

    def person(key: str, where: str) -> Person:
        if key not in people:
            raise KseriesError(f"{path}: {where} names unknown person {key!r}",
                               hint=f"add [people.{key}] or use one of {', '.join(people)}")
        return people[key]

    s = data["series"]
    patches = []
    for n, p in enumerate(data.get("patch", []), start=1):
        where = f"patch {n} ({p.get('subject', '?')})"
        for change in p["changes"]:
            if not any((d / "changes" / f"{change}.toml.j2").exists()
                       for d in (series, series.parent / "common")):
                raise KseriesError(f"{path}: {where} names unknown change {change!r}",
                                   hint=f"no {series}/changes/{change}.toml.j2")
        try:
            date = datetime.fromisoformat(p["date"])
        except ValueError as exc:
            raise KseriesError(f"{path}: {where} has a bad date {p['date']!r}") from exc
        patches.append(Patch(
            number=n,
            subject=p["subject"],
            author=person(p["author"], where),
            date=date,
            message=p["message"],
            changes=tuple(p["changes"]),
            trailers=tuple(Trailer(t, person(k, where)) for t, k in p["trailers"]),
            upstream=_upstream(p.get("upstream", ""), path, where),
            upstream_trailers=tuple(Trailer(t, person(k, where))
                                    for t, k in p.get("upstream_trailers", ())),
        ))
    if not patches:
        raise KseriesError(f"{path}: no [[patch]] entries", hint="the series needs a patch")
    return Manifest(
        name=s["name"],
        subject_prefix=s["subject_prefix"],
        rfc=bool(s["rfc"]),
        version=int(s["version"]),
        sender=person(s["sender"], "[series] sender"),
        cover=s["cover"],
        cover_subject=s["cover_subject"],
        to=tuple(s.get("to", ())),
        cc=tuple(s.get("cc", ())),
        changelog=tuple(Changelog(c["version"], tuple(c["items"])) for c in s.get("changelog", ())),
        links=dict(s.get("links", {})),
        patches=tuple(patches),
        dir=series,
        id=series.resolve().name,
        gate=_gate(data.get("gate"), path),
        path=path,
        matrix=_matrix(s.get("matrix", list(DEFAULT_MATRIX)), path),
        backport=_backport(s.get("backport"), patches, path),
    )


def _upstream(commit: object, path: Path, where: str) -> str:
    if not isinstance(commit, str) or (commit and not re.fullmatch(r"[0-9a-f]{40}", commit)):
        raise KseriesError(f"{path}: {where}: upstream must be a commit id of 40 hex digits")
    return commit


def _backport(entry: object, patches: list[Patch], path: Path) -> Backport | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or set(entry) != {"cover", "notes"}:
        raise KseriesError(f"{path}: [series.backport] has cover = TEMPLATE and notes = TEMPLATE")
    missing = [p.number for p in patches if not p.upstream]
    if missing:
        raise KseriesError(f"{path}: [series.backport] but patch {missing[0]} names no "
                           "upstream commit", hint="add upstream = COMMIT to every [[patch]]")
    return Backport(str(entry["cover"]), str(entry["notes"]))


def _matrix(names: object, path: Path) -> tuple[str, ...]:
    if not isinstance(names, list) or not names or \
            not all(isinstance(n, str) and n for n in names):
        raise KseriesError(f"{path}: [series] matrix must be a list of profile names",
                           hint='e.g. matrix = ["kvm-x86", "kvm-x86-nosmm"]')
    if len(set(names)) != len(names):
        raise KseriesError(f"{path}: [series] matrix names a profile twice")
    return tuple(names)


def _gate(entries: object, path: Path) -> tuple[GateRule, ...]:
    if entries is None:
        return DEFAULT_GATE
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise KseriesError(f"{path}: gate must be [[gate]] tables")
    rules: list[GateRule] = []
    for n, e in enumerate(entries, start=1):
        where = f"{path}: [[gate]] {n}"
        if "check" in e:
            extra = sorted(set(e) - {"check"})
            if extra or not isinstance(e["check"], str) or not e["check"]:
                raise KseriesError(f"{where}: a check rule has only check = NAME",
                                   hint=f'e.g. check = "{ALL_CHECKS}" or check = "build"')
            rules.append(CheckRule(e["check"]))
            continue
        if "suite" in e:
            if set(e) != {"suite", "on"} or not all(
                    isinstance(e[k], str) and e[k] for k in ("suite", "on")):
                raise KseriesError(f"{where}: a suite rule has suite = NAME and on = HOST KIND",
                                   hint='e.g. suite = "all", on = "tcg-amd"')
            rules.append(SuiteRule(e["suite"], e["on"]))
            continue
        unknown = sorted(set(e) - {"vendor", "needs", "result", "test", "evidence"})
        if unknown:
            raise KseriesError(f"{where}: unknown key {unknown[0]!r}",
                               hint="a host rule has vendor, needs, result, test and evidence")
        vendor, needs, result = e.get("vendor"), e.get("needs"), e.get("result")
        if vendor not in GATE_VENDORS:
            raise KseriesError(f"{where}: vendor {vendor!r}",
                               hint=f"one of {', '.join(GATE_VENDORS)}")
        if not isinstance(needs, str) or not needs:
            raise KseriesError(f"{where}: needs = CAPABILITY is missing",
                               hint='a capability hosts declare, e.g. "bus_lock_threshold"')
        if result not in GATE_RESULTS:
            raise KseriesError(f"{where}: result {result!r}",
                               hint=f"one of {', '.join(GATE_RESULTS)}")
        test = e.get("test", "kvm_buslock_test")
        if not isinstance(test, str) or not test:
            raise KseriesError(f"{where}: test must be a selftest's name")
        evidence = e.get("evidence", "hardware")
        if evidence not in EVIDENCE:
            raise KseriesError(f"{where}: evidence {evidence!r}",
                               hint=f"one of {', '.join(EVIDENCE)}")
        rules.append(HostRule(vendor, needs, result, test, evidence))
    return tuple(rules)
