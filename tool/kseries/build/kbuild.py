"""Kernel builds: one out-of-tree build directory per base and profile.

A build directory belongs to one worktree (``build-<profile>`` of the base's
scratch repository): kbuild's dependency files name source paths, so moving
that worktree between commits and running make rebuilds exactly what the
move changed. ccache sits under the kseries cache; the compiler command line
is the same on every run so a warm directory stays warm.

The profiles of a matrix (kvm-x86 and its variants) share one worktree, each
with a build directory of its own: the worktree moves once per patch, and as the
build directories sit side by side their compiler command lines name the same
relative paths, so ccache serves what one profile compiled to the others
(host programs, and objects their options do not change).

One run at a time uses a worktree and its build directories (``locked``); an
interrupted make removes the target it was writing, so the directory stays warm
and whole for the next run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.base import workspace
from kseries.base.bases import Base
from kseries.base.cache import cache_root, file_lock, write_atomic
from kseries.build import bzimage, profiles
from kseries.build.profiles import Profile
from kseries.errors import KseriesError
from kseries.progress import NullReporter, Reporter


@dataclass(frozen=True)
class Build:
    """A worktree of a base and the build directory that goes with it."""

    base: Base
    profile: Profile
    src: Path
    out: Path
    jobs: int

    @property
    def logs(self) -> Path:
        return self.out / "kseries-logs"


def build_dir_of(base: Base, profile: Profile) -> Path:
    return cache_root() / "build" / base.key / profile.name


@contextmanager
def locked(base: Base, profile: Profile) -> Iterator[None]:
    """Use ``profile``'s worktree (and every build directory built from it) alone while
    this lasts: the profiles of a matrix share one worktree, and so one lock."""
    with tree_locked(base, profile.tree):
        yield


@contextmanager
def tree_locked(base: Base, tree: str) -> Iterator[None]:
    """Use the worktree ``build-<tree>`` (and what builds from it) alone while this lasts."""
    with file_lock(cache_root() / "build" / base.key / f"{tree}.lock"):
        yield


def open_build(base: Base, profile: Profile, commit: str, *,
               reporter: Reporter | None = None) -> Build:
    """The build of ``profile`` for ``base`` with its worktree at ``commit``, configured."""
    reporter = reporter or NullReporter()
    with locked(base, profile):  # the first run makes it; the others wait
        src = workspace.checkout(base, commit, f"build-{profile.tree}")
        out = build_dir_of(base, profile)
        out.mkdir(parents=True, exist_ok=True)
        b = Build(base, profile, src, out, os.cpu_count() or 2)
        configure(b, reporter)
    return b


def move(b: Build, commit: str) -> None:
    """Check the build's worktree out at ``commit`` (make then rebuilds what changed)."""
    workspace.checkout(b.base, commit, b.src.name)


def make_env(profile: Profile | None = None) -> dict[str, str]:
    env = {"KBUILD_BUILD_USER": "kseries", "KBUILD_BUILD_HOST": "kseries", "LC_ALL": "C"}
    if shutil.which("ccache"):
        env["CCACHE_DIR"] = str(cache_root() / "ccache")
        env["CCACHE_BASEDIR"] = str(cache_root())
        if profile is not None and profile.ccache == "depend":
            env["CCACHE_DEPEND"] = "1"  # kbuild passes -Wp,-MMD: ccache reads that .d file
    return env


def make_argv(b: Build, *targets: str, w1: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
    argv = ["make", "-C", str(b.src), f"O={b.out}", f"-j{b.jobs}"]
    if b.profile.arch:
        argv.append(f"ARCH={b.profile.arch}")
    if shutil.which("ccache"):  # host programs too: the matrix's build dirs share them
        argv += ["CC=ccache gcc", "HOSTCC=ccache gcc"]
    if w1:
        argv.append("W=1")
    return [*argv, *extra, *targets]


def make(b: Build, *targets: str, log: str, w1: bool = False,
         extra: tuple[str, ...] = (), check: bool = True, what: str = "",
         extra_env: dict[str, str] | None = None) -> proc.Result:
    """Run make on ``targets``; output goes to logs/<log>.log (replaced each run)."""
    path = b.logs / f"{log}.log"
    path.unlink(missing_ok=True)
    return proc.run(make_argv(b, *targets, w1=w1, extra=extra),
                    env={**make_env(b.profile), **(extra_env or {})},
                    log_to=path, check=check, what=what or f"make {' '.join(targets)}",
                    timeout=7200)


# The boot image embeds the compressed vmlinux with .incbin
# (arch/x86/boot/compressed/piggy.S), a file ccache cannot see as an input: in
# depend mode it keys piggy.o on piggy.S alone, whose text names only the two
# sizes, so a series edit that keeps them (svm_set_intercept to svm_clr_intercept)
# got back the previous build's piggy.o, and a bzImage holding another kernel.
IMAGE = "bzImage"
IMAGE_PAYLOAD = "arch/x86/boot/compressed/vmlinux.bin.*"
PIGGY = "arch/x86/boot/compressed/piggy.o"


def steps(targets: tuple[str, ...]) -> str:
    """What ``make_targets`` runs for ``targets``, in words (for progress lines)."""
    rest = [t for t in targets if t != IMAGE]
    if len(rest) == len(targets):
        return f"make {' '.join(targets)}"
    return f"make {' '.join(['vmlinux', *rest])}, then {IMAGE} without ccache"


def make_targets(b: Build, *targets: str, log: str) -> None:
    """Make a profile's targets; a bzImage is made from the vmlinux of this build.

    vmlinux (and any other target) is made with ccache; the boot image's few
    small objects without it, then checked to carry the compressed vmlinux
    that make just wrote.
    """
    rest = tuple(t for t in targets if t != IMAGE)
    if rest == targets:
        make(b, *targets, log=log)
        return
    make(b, "vmlinux", *rest, log=log)
    uncached = {"CCACHE_DISABLE": "1"}
    make(b, IMAGE, log=f"{log}-image", extra_env=uncached)
    if not check_image(b.out, fail=False):
        # A build directory from before this rule: its piggy.o is newer than the
        # payload it should hold, so make keeps it. Make it again, uncached.
        (b.out / PIGGY).unlink(missing_ok=True)
        make(b, IMAGE, log=f"{log}-image", extra_env=uncached)
        check_image(b.out)


def check_image(out: Path, *, fail: bool = True) -> bool:
    """Whether the bzImage's payload is the compressed vmlinux beside it (with
    ``fail``, refuse it when not)."""
    image = out / "arch/x86/boot" / IMAGE
    made = sorted(out.glob(IMAGE_PAYLOAD), key=lambda p: p.stat().st_mtime)
    try:
        data = image.read_bytes()
        payload = made[-1].read_bytes() if made else b""
    except OSError as exc:
        raise KseriesError(f"{image}: cannot read the built kernel ({exc.strerror})") from exc
    carried = bzimage.payload(data)
    if carried is None or not payload:
        raise KseriesError(f"{image}: no x86 boot header or no compressed vmlinux beside it",
                           hint=f"remove {out} and build again")
    if carried == payload:
        return True
    if fail:
        raise KseriesError(f"{image}: its payload is not {made[-1].name} of this build "
                           f"(a stale {PIGGY})",
                           hint=f"remove {out}/arch/x86/boot and build again")
    return False


def configure(b: Build, reporter: Reporter) -> None:
    stamp_file = b.out / ".kseries-config"
    stamp = f"{b.base.commit} {b.profile.stamp()}"
    if (b.out / ".config").exists() and stamp_file.exists() and \
            stamp_file.read_text().strip() == stamp:
        return
    reporter.update(f"configuring {b.profile.name} ({b.profile.base_target})")
    make(b, b.profile.base_target, log="config", what=f"make {b.profile.base_target}")
    wanted = dict(b.profile.options)
    for frag in b.profile.fragments:
        wanted.update(profiles.read_fragment(frag))
    with (b.out / ".config").open("a") as fh:
        fh.write("# kseries profile " + b.profile.name + "\n")
        for name, value in wanted.items():
            off = f"# CONFIG_{name} is not set\n"
            fh.write(off if value == "n" else f"CONFIG_{name}={value}\n")
    make(b, "olddefconfig", log="config-merge", what="make olddefconfig")
    got = profiles.read_fragment(b.out / ".config")
    for name, value in wanted.items():
        have = got.get(name, "n")
        if have != value:
            raise KseriesError(
                f"profile {b.profile.name}: CONFIG_{name}={value} did not stick "
                f"(the base's Kconfig gives {have})",
                hint="a dependency is missing from the profile; see templates/profiles/",
            )
    write_atomic(stamp_file, stamp + "\n")


def headers_install(b: Build) -> Path:
    dest = b.out / "kseries-headers"
    make(b, "headers_install", log="headers", extra=(f"INSTALL_HDR_PATH={dest}",))
    return dest


@dataclass(frozen=True)
class Selftests:
    binaries: dict[str, Path]
    warnings: tuple[str, ...]  # warnings in the named tests' own sources
    log: Path


@dataclass(frozen=True)
class ExtraPrograms:
    """Programs of kseries' own, built with the base's selftest library.

    They are not part of any series: for the build, each source (and the
    headers beside it) is copied into the worktree's ``test_dir`` and listed in
    the selftest makefile's ``var``; both are undone afterwards (and by the next checkout of the
    worktree, which cleans it, if kseries was stopped in between).
    """

    sources: dict[str, Path]  # program name -> C source
    makefile: str  # the base's selftest makefile, relative to the tree
    var: str  # its list of x86 programs, e.g. TEST_GEN_PROGS_x86_64


def build_selftests(b: Build, test_dir: str, names: tuple[str, ...],
                    extra: ExtraPrograms | None = None, *, keep_going: bool = False,
                    output: str = "kseries-selftests", log_name: str = "selftests",
                    ) -> Selftests:
    """Build KVM selftests statically against headers installed from ``b.src``.

    ``test_dir`` is "x86_64" or "x86" (the base's layout, from the probe);
    ``extra`` adds kseries' own programs (built, but never left in the tree).
    ``keep_going`` (make -k): build what builds and give only those, leaving
    out the rest and names the base has no source for; the caller says what is
    missing. ``output`` and ``log_name`` name the directory and the log under
    the build directory.
    """
    if extra and extra.sources:
        with _listed(b, test_dir, extra):
            return build_selftests(b, test_dir, (*names, *extra.sources),
                                   keep_going=keep_going, output=output, log_name=log_name)
    headers = headers_install(b)
    out = b.out / output
    kvm = b.src / "tools/testing/selftests/kvm"
    targets = {}
    for n in names:  # arch tests live in x86_64/ (or x86/), generic ones at the top
        sub = next((d for d in (test_dir, ".") if (kvm / d / f"{n}.c").is_file()), None)
        if sub is None:
            if keep_going:
                continue
            raise KseriesError(f"selftest {n}: no {n}.c in {kvm}",
                               hint="check the test names in kselftest/hosts.toml")
        targets[n] = out / n if sub == "." else out / sub / n
    for t in targets.values():  # what does not build this time must not be found from before
        t.unlink(missing_ok=True)
    log = b.logs / f"{log_name}.log"
    log.unlink(missing_ok=True)
    proc.run(
        ["make", *(["-k"] if keep_going else []), "-C", str(kvm), f"OUTPUT={out}",
         f"KHDR_INCLUDES=-isystem {headers}/include", "EXTRA_CFLAGS=-static",
         f"-j{b.jobs}", *map(str, targets.values())],
        env={"LC_ALL": "C"}, log_to=log, what=f"selftests {' '.join(names[:8])}"
        + (" ..." if len(names) > 8 else ""), timeout=3600, check=not keep_going,
    )
    if keep_going:
        targets = {n: t for n, t in targets.items() if t.is_file()}
    text = log.read_text(errors="replace")
    warnings = tuple(ln for ln in text.splitlines()
                     if "warning:" in ln and any(f"/{n}.c:" in ln for n in names))
    return Selftests(targets, warnings, log)


@contextmanager
def _listed(b: Build, test_dir: str, extra: ExtraPrograms) -> Iterator[None]:
    """The worktree with ``extra``'s sources in it and listed in its makefile, for a while."""
    makefile = b.src / extra.makefile
    kvm = b.src / "tools/testing/selftests/kvm"
    original = makefile.read_text()
    lines = original.splitlines(keepends=True)
    plus = re.compile(rf"^{re.escape(extra.var)}\s*\+=")
    listed = [i for i, ln in enumerate(lines) if plus.match(ln)]
    if not listed:
        raise KseriesError(f"{makefile}: no '{extra.var} +=' line to list kseries' programs after",
                           hint="the probe's selftest facts do not fit this base")
    added = "".join(f"{extra.var} += {test_dir}/{n}\n" for n in extra.sources)
    # the programs, and the headers beside them that they share
    headers = {h for src in extra.sources.values() for h in src.parent.glob("*.h")}
    files = [*extra.sources.values(), *sorted(headers)]
    copies: list[Path] = []
    try:
        for src in files:
            dest = kvm / test_dir / src.name
            if dest.exists():
                raise KseriesError(f"{dest}: the base has a file of kseries' own {src.name}")
            copies.append(dest)
            shutil.copyfile(src, dest)
        makefile.write_text("".join(lines[:listed[-1] + 1]) + added
                            + "".join(lines[listed[-1] + 1:]))
        yield
    finally:
        makefile.write_text(original)
        for dest in copies:
            dest.unlink(missing_ok=True)
