"""Ctrl-C at each stage: import, render, check build, VM boot, submit (and pipeline).

Each test starts the real `kseries` command in a process group of its own, waits
until it is at the stage (its command there is running), sends SIGINT to the
group as a terminal does, and asserts: exit 130, one line, no traceback, nothing
that kseries started still running, and a next run that works as if nothing had
happened. The stand-ins that make a quick stage wait are in fault_fixtures.py;
they would sleep 120 s, so a run that ends within seconds stopped them.

This file sorts after test_qemu.py on purpose: the VM test uses the kernel that
test_qemu's slow test builds in the shared cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest_harness import require_artifacts
from fault_fixtures import (
    PAUSE,
    Started,
    error_line,
    fault_tree,
    git_wrapper,
    group_of,
    kseries,
    members,
    paused_pids,
    processes_mentioning,
    repo_state,
    wait_for,
)
from kseries.base import bases

QUICK = 30.0  # seconds: an interrupted run ends well within this (the stop grace is 5 s)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return fault_tree(tmp_path / "linux")


def interrupted(run: Started, command: str, *, group: bool = True) -> None:
    """Ctrl-C now; the run ends quickly with exit 130 and its one line."""
    t0 = time.monotonic()
    run.interrupt(group)
    code, out, err = run.wait(QUICK + 30)
    assert time.monotonic() - t0 < QUICK, "kseries waited for what it had started"
    assert code == 130, err
    assert error_line(err, out) == (f"kseries: interrupted: {command} stopped with every "
                                    "command it started; run it again to finish")


def paused_groups(run: Started, pause: Path, count: int = 1) -> set[int]:
    """Wait until ``count`` paused stand-ins run; the process groups kseries started them in."""
    wait_for("the stage's command to start", lambda: len(paused_pids(pause)) >= count, run)
    return {group_of(pid) for pid in paused_pids(pause)}


def test_ctrl_c_at_import(debian_612: bases.Base, tmp_path: Path) -> None:
    """A half-imported base is never taken for a whole one; the next import is the same."""
    cache = tmp_path / "cache"
    run = Started(["facts", "--base", "debian:6.12"], cache, tmp_path / "run")
    wait_for("git fast-import to run", lambda: bool(
        processes_mentioning(str(cache / "bases")) and list((cache / "bases").glob("*.tmp"))),
        run)
    time.sleep(2)  # well into the import
    interrupted(run, "facts")
    assert not processes_mentioning(str(cache)), "git fast-import is still running"
    assert not [p for p in (cache / "bases").glob("*.git")], "a half import looks whole"
    res = kseries(["facts", "--base", "debian:6.12"], cache, timeout=900)
    assert res.returncode == 0, res.stderr
    assert f'"commit": "{debian_612.commit}"' in res.stdout  # the import is deterministic
    assert not list((cache / "bases").glob("*.tmp"))


def test_ctrl_c_at_render(tree: Path, tmp_path: Path) -> None:
    cache, pause = tmp_path / "cache", tmp_path / "pause"
    path = f"{git_wrapper(tmp_path / 'bin', 'format-patch')}:{os.environ['PATH']}"
    before = repo_state(tree)
    run = Started(["render", "--base", str(tree)], cache, tmp_path / "run",
                  {"PATH": path, PAUSE: str(pause)})
    groups = paused_groups(run, pause)
    interrupted(run, "render")
    assert not [g for g in groups if members(g)], "git format-patch is still running"
    again = kseries(["render", "--base", str(tree), "-o", str(tmp_path / "a")], cache)
    fresh = kseries(["render", "--base", str(tree), "-o", str(tmp_path / "b")],
                    tmp_path / "fresh")
    assert again.returncode == 0 == fresh.returncode, again.stderr
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert repo_state(tree) == before


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.patch"))}


def test_ctrl_c_in_a_pipeline_runs_no_later_stage(tree: Path, tmp_path: Path) -> None:
    cache, pause = tmp_path / "cache", tmp_path / "pause"
    path = f"{git_wrapper(tmp_path / 'bin', 'format-patch')}:{os.environ['PATH']}"
    run = Started(["pipeline", "--base", str(tree), "--stages", "render,check",
                   "-o", str(tmp_path / "out")], cache, tmp_path / "run",
                  {"PATH": path, PAUSE: str(pause)})
    paused_groups(run, pause)
    interrupted(run, "render")
    out = run.out.read_text()
    assert "=== render ===" in out and "=== check ===" not in out and "summary:" not in out


def test_ctrl_c_in_a_pipeline_stops_the_base_build_beside_check(tree: Path,
                                                                 tmp_path: Path) -> None:
    """The base's vm build runs beside check, as a process of its own: Ctrl-C stops it too.

    Commands of both wait: check's get_maintainer.pl stand-ins, and the base's
    `make tinyconfig` (the stand-in Makefile's) in the build beside it."""
    cache, pause, out = tmp_path / "cache", tmp_path / "pause", tmp_path / "out"
    run = Started(["pipeline", "--base", str(tree), "--stages", "render,check,build",
                   "-o", str(out)], cache, tmp_path / "run", {PAUSE: str(pause)})
    wait_for("the base's make tinyconfig beside check", lambda: any(
        "tinyconfig" in argv for argv in processes_mentioning(str(cache))), run)
    groups = paused_groups(run, pause, count=2)  # get_maintainer.pl's too
    interrupted(run, "check")
    assert not [g for g in groups if members(g)], "a command of check or of the build beside " \
        "it is still running"
    assert not processes_mentioning(str(cache)), "the base's build beside check still runs"
    assert "=== build ===" not in run.out.read_text()
    assert "nice -n 19" in (out / "build-base.log").read_text().splitlines()[0]


def test_ctrl_c_at_check_build(tree: Path, tmp_path: Path) -> None:
    """make is stopped with its jobs; the worktree and build directory serve the next run.

    The synthetic tree's Makefile stands in for the kernel's (no real kernel here)."""
    cache, pause = tmp_path / "cache", tmp_path / "pause"
    before = repo_state(tree)
    cmd = ["check", "--base", str(tree), "--only", "build", "--profile", "kvm-x86"]
    run = Started(cmd, cache, tmp_path / "run",
                  {PAUSE: str(pause)})
    groups = paused_groups(run, pause)
    assert any("make" in argv for argv in processes_mentioning(str(cache / "build")))
    interrupted(run, "check", group=False)  # only kseries gets it: it must stop make
    assert not [g for g in groups if members(g)], "make (or its recipe) is still running"
    res = kseries(cmd, cache)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [ln for ln in res.stdout.splitlines() if ln[:2] in ("1:", "2:", "3:", "4:", "5:")]
    assert len(rows) == 5 and all(ln.rstrip().endswith("PASS") for ln in rows), res.stdout
    assert repo_state(tree) == before


def test_ctrl_c_at_vm_boot(tmp_path: Path) -> None:
    """QEMU (real, TCG, the vm kernel) is stopped; the next run boots and passes."""
    art = require_artifacts()
    selftests = next(iter(art.selftests.values())).parent
    while not all(any(selftests.rglob(n)) for n in art.selftests):
        selftests = selftests.parent
    out = tmp_path / "results"
    args = ["run", "--kernel", str(art.kernel), "--selftests", str(selftests), "--unpatched",
            "--accel", "tcg", "--host", "qemu-amd", "-o", str(out)]
    run = Started(args, tmp_path / "cache", tmp_path / "run")
    wait_for("QEMU to boot", lambda: any("qemu-system" in a for a in
                                         processes_mentioning(str(out))), run, timeout=120)
    time.sleep(1)
    interrupted(run, "run")
    assert not processes_mentioning(str(out)), "QEMU is still running"
    res = kseries(args, tmp_path / "cache", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (out / "summary.json").is_file()


@pytest.mark.parametrize("group", [True, False], ids=["terminal", "kill-pid"])
def test_ctrl_c_at_submit(tree: Path, tmp_path: Path, group: bool) -> None:
    """get_maintainer.pl runs in threads, one per patch: all of them are stopped, and no
    thread starts another, whether SIGINT reaches the whole group or kseries only."""
    cache, pause = tmp_path / "cache", tmp_path / "pause"
    outbox = tmp_path / "outbox"
    before = repo_state(tree)
    args = ["submit", "--base", str(tree), "--force", "-o", str(outbox)]
    run = Started(args, cache, tmp_path / "run", {PAUSE: str(pause)})
    groups = paused_groups(run, pause, count=4)  # one per thread: 4 at once
    interrupted(run, "submit", group=group)
    assert not [g for g in groups if members(g)], "a get_maintainer.pl is still running"
    assert not outbox.exists(), "a partial outbox was written"
    res = kseries(args, cache)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(list(outbox.iterdir())) == 6
    assert repo_state(tree) == before
