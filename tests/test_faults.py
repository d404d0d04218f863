"""Faults a user meets: a bad cache, a full disk, two runs at once, broken input.

Each case runs the real `kseries` command in a subprocess and asserts its exit
code, that there is no traceback, the one line it ends with, and that the
user's repository (the base tree) did not change. Ctrl-C at each stage is in
test_signals.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fault_fixtures import (
    Started,
    error_line,
    fault_tree,
    kseries,
    repo_state,
    timeless,
    wait_for,
)
from kseries.base import bases
from kseries.cli.boundary import describe
from synthetic import git

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return fault_tree(tmp_path / "linux")


def test_cache_below_a_plain_file(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    before = repo_state(tree)
    res = kseries(["render", "--base", str(tree)], tmp_path / "file" / "cache")
    assert res.returncode == 1
    line = error_line(res.stderr)
    assert line.startswith(f"kseries: error: render: cannot create the directory "
                           f"{tmp_path}/file/cache/"), line
    assert ": Not a directory [ENOTDIR]; a part of that path is a file" in line
    assert f"or set KSERIES_CACHE to another directory (the cache is {tmp_path}/file/cache)" \
        in line
    # The same through XDG_CACHE_HOME, and -v adds the traceback for a bug report.
    env_cache = tmp_path / "unused"
    res = kseries(["-v", "render", "--base", str(tree)], env_cache,
                  {"KSERIES_CACHE": "", "XDG_CACHE_HOME": str(tmp_path / "file")})
    assert res.returncode == 1
    assert "Traceback (most recent call last)" in res.stderr
    assert "NotADirectoryError" in res.stderr
    last = res.stderr.splitlines()[-1]
    assert last.startswith(f"kseries: error: render: cannot create the directory "
                           f"{tmp_path}/file/kseries/") and "[ENOTDIR]" in last
    assert repo_state(tree) == before


def test_cache_that_is_not_writable(tree: Path, tmp_path: Path) -> None:
    """EACCES: root may write anywhere, so this runs kseries as nobody (setpriv)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to run kseries as another user")
    if os.geteuid() != 0:
        pytest.skip("needs root to run kseries as the user nobody")
    shared = Path(subprocess.run(["mktemp", "-d", "/tmp/kseries-eacces.XXXXXX"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    try:
        shared.chmod(0o755)
        base = shutil.copytree(tree, shared / "linux", symlinks=True)
        (shared / "cache").mkdir(mode=0o755)  # root's: nobody may not write in it
        before = repo_state(base)
        probe = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                                sys.executable, "-c", "import sys, kseries\n"
                                "open(sys.argv[1], 'w')", str(shared / "cache" / "probe")],
                               capture_output=True, text=True, check=False,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "tool")})
        if "PermissionError" not in probe.stderr:
            pytest.skip("the user nobody cannot run kseries' Python here, or may write "
                        f"anywhere: {probe.stderr.strip()[-200:] or 'it wrote'}")
        safe = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
                "GIT_CONFIG_VALUE_0": "*", "HOME": str(shared)}
        env = {k: v for k, v in os.environ.items() if k != "KSERIES_CACHE"}
        env.update(safe, KSERIES_CACHE=str(shared / "cache"), PYTHONPATH=str(ROOT / "tool"))
        res = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                              sys.executable, "-m", "kseries", "render", "--base", str(base),
                              "-o", str(shared / "out")],
                             env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 1, res.stderr
        line = error_line(res.stderr)
        assert line.startswith(f"kseries: error: render: cannot create the directory "
                               f"{shared}/cache/"), line
        assert ": Permission denied [EACCES]; make it accessible to this user" in line
        assert repo_state(base) == before
    finally:
        shutil.rmtree(shared)


def test_disk_full(tree: Path, tmp_path: Path) -> None:
    """ENOSPC: the cache on a 256 KiB tmpfs; then with room, the same render succeeds."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the cache ({mounted.stderr.strip()}): "
                    "run as root with CAP_SYS_ADMIN")
    try:
        before = repo_state(tree)
        res = kseries(["render", "--base", str(tree)], small / "cache")
        assert res.returncode == 1
        line = error_line(res.stderr)
        assert line.startswith(f"kseries: error: render: cannot write {small}/cache/"), line
        assert ": No space left on device [ENOSPC]; free some space on that filesystem, or " \
               "set KSERIES_CACHE to another directory" in line
        assert not [p for p in small.rglob("*.tmp")], "a half-written temporary file is left"
        subprocess.run(["mount", "-o", "remount,size=32m", str(small)], check=True)
        res = kseries(["render", "--base", str(tree), "-o", str(tmp_path / "a")], small / "cache")
        ref = kseries(["render", "--base", str(tree), "-o", str(tmp_path / "b")],
                      tmp_path / "fresh")
        assert res.returncode == 0 == ref.returncode, res.stderr
        assert _files(tmp_path / "a") == _files(tmp_path / "b")
        assert repo_state(tree) == before
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.patch"))}


def test_two_renders_at_once_on_a_fresh_cache(tree: Path, tmp_path: Path) -> None:
    """Both write the same scratch repository, render record and default output dir."""
    before = repo_state(tree)
    for attempt in range(3):
        cache = tmp_path / f"cache{attempt}"
        runs = [Started(["render", "--base", str(tree)], cache, tmp_path / f"r{attempt}{i}")
                for i in range(2)]
        results = [r.wait(300) for r in runs]
        for code, _, err in results:
            assert code == 0, err
            assert "Traceback" not in err
        assert results[0][1] == results[1][1]
        assert "5 patches and a cover letter in" in results[0][1]
        series = next((cache / "series").iterdir()) / "v2"  # per base, then per series
        assert len(list(series.glob("*.patch"))) == 6
    assert repo_state(tree) == before


def test_two_fast_checks_at_once_on_a_fresh_cache(tree: Path, tmp_path: Path) -> None:
    """The first use of the scratch repository and the worktree by two runs at once."""
    before = repo_state(tree)
    runs = [Started(["check", "--base", str(tree), "--fast"], tmp_path / "cache",
                    tmp_path / f"c{i}") for i in range(2)]
    (c1, out1, err1), (c2, out2, err2) = (r.wait(300) for r in runs)
    assert c1 == 0 == c2, err1 + err2
    assert "Traceback" not in err1 + err2
    assert timeless(out1) == timeless(out2)
    assert "verdict: pass" in out1
    assert repo_state(tree) == before


def test_two_fast_checks_at_once_on_a_debian_base(debian_612: bases.Base,
                                                  tmp_path: Path) -> None:
    """The real base, its real checkpatch.pl and get_maintainer.pl, in the shared cache."""
    from kseries.base.cache import cache_root
    runs = [Started(["check", "--base", "debian:6.12", "--fast"], cache_root(),
                    tmp_path / f"c{i}") for i in range(2)]
    (c1, out1, err1), (c2, out2, err2) = (r.wait(600) for r in runs)
    assert c1 == 0 == c2, err1 + err2
    assert "Traceback" not in err1 + err2
    assert timeless(out1) == timeless(out2)
    assert "verdict: pass" in out1


def test_truncated_patch_is_a_finding(tree: Path, tmp_path: Path) -> None:
    """One patch cut off halfway: FAIL for it (table and JSON), exit 2, the rest checked."""
    cache = tmp_path / "cache"
    assert kseries(["render", "--base", str(tree), "-o", str(tmp_path / "p")], cache) \
        .returncode == 0
    third = next((tmp_path / "p").glob("*0003-*.patch"))
    data = third.read_bytes()
    third.write_bytes(data[: len(data) // 2])
    before = repo_state(tree)
    report = tmp_path / "check.json"
    res = kseries(["check", "--base", str(tree), "--fast", str(tmp_path / "p"),
                   "--json", str(report)], cache)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    row3 = next(ln for ln in res.stdout.splitlines() if ln.startswith("3: "))
    assert "FAIL" in row3
    assert "FAIL shape (patch 3): damaged patch: " in res.stdout
    cells = json.loads(report.read_text())["cells"]
    damaged = [c for c in cells if c["row"] == 3 and c["check"] == "shape"
               and c["status"] == "FAIL" and c["reason"].startswith("damaged patch: ")]
    assert damaged, cells
    for row in (1, 2, 4, 5):  # the others are still checked
        assert {c["check"]: c["status"] for c in cells if c["row"] == row}["trailers"] == "PASS"
    assert all(c["status"] == "PASS" for c in cells if c["check"] == "applies"
               and c["row"] in (1, 2))
    # Chosen checks that do not read the diff still show the damaged patch.
    res = kseries(["check", "--base", str(tree), "--only", "trailers", str(tmp_path / "p")],
                  cache)
    assert res.returncode == 2 and "FAIL shape (patch 3): damaged patch: " in res.stdout
    assert repo_state(tree) == before


def test_run_rejects_a_kernel_that_is_not_a_bzimage(tmp_path: Path) -> None:
    junk = tmp_path / "bzImage"
    junk.write_bytes(b"\x7fELF" + bytes(4096))  # e.g. a vmlinux, not the bzImage
    out = tmp_path / "results"
    res = kseries(["run", "--kernel", str(junk), "--test", "smm_test=/bin/true",
                   "-o", str(out)], tmp_path / "cache")
    assert res.returncode == 1
    assert error_line(res.stderr) == (
        f"kseries: error: --kernel {junk}: not a bzImage (no x86 boot setup header: 0xAA55 at "
        "0x1FE, 'HdrS' at 0x202): give arch/x86/boot/bzImage of a vm-profile build "
        "(kseries build --profile vm)")
    assert not out.exists(), "QEMU's results directory was made: it started"


def test_apply_refuses_an_existing_branch_before_rendering(tree: Path, tmp_path: Path) -> None:
    git(tree, "branch", "buslock")
    before = repo_state(tree)
    cache = tmp_path / "cache"
    res = kseries(["apply", "--base", str(tree), "--branch", "buslock"], cache)
    assert res.returncode == 1
    gitdir = git(tree, "rev-parse", "--absolute-git-dir")
    assert error_line(res.stderr) == (
        f"kseries: error: branch buslock already exists in {gitdir}: choose another name, or "
        "--force to move it (the old commits stay reachable by its reflog)")
    assert "[render]" not in res.stderr and not (cache / "work").exists(), "it rendered first"
    assert repo_state(tree) == before


def test_a_damaged_repository_is_one_line(tree: Path, tmp_path: Path) -> None:
    """A GitPython error: a blob of the base is missing (a damaged copy of the tree)."""
    damaged = shutil.copytree(tree, tmp_path / "damaged", symlinks=True)
    blob = git(damaged, "rev-parse", "HEAD:arch/x86/kvm/svm/svm.c")
    (damaged / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    res = kseries(["render", "--base", str(damaged)], tmp_path / "cache")
    assert res.returncode == 1
    line = error_line(res.stderr)
    assert line.startswith("kseries: error: render: git: ") and blob in line, line
    assert line.endswith("; is a repository damaged (git fsck)? rerun with -v for the traceback")


def test_a_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    """UnicodeDecodeError: a host inventory that is not UTF-8."""
    hosts = tmp_path / "hosts.toml"
    hosts.write_bytes(b'name = "\xff\xfe"\n')
    res = kseries(["run", "--hosts", str(hosts)], tmp_path / "cache")
    assert res.returncode == 1
    assert error_line(res.stderr) == (
        f"kseries: error: run: cannot read {hosts} as utf-8: byte 0xff at offset 8 "
        "(invalid start byte); is it a text file?")


def test_foreseen_errors_keep_their_own_line(tmp_path: Path) -> None:
    """Invalid TOML in an inventory is foreseen: its own message, not the generic one."""
    hosts = tmp_path / "hosts.toml"
    hosts.write_text("[[host]\n")
    res = kseries(["run", "--hosts", str(hosts)], tmp_path / "cache")
    assert res.returncode == 1
    assert error_line(res.stderr).startswith(f"kseries: error: {hosts}: not valid TOML (")


def test_errors_no_command_reads_yet_are_one_line_too(tmp_path: Path) -> None:
    """The boundary's wording for YAML and TOML errors, which no command meets today
    (kseries only writes YAML; its TOML readers catch their errors): raised for real
    by the parsers, described in-process."""
    import tomllib

    import yaml
    for parse, text, words in ((yaml.safe_load, "a: [1, 2\n", "YAML: while parsing"),
                               (tomllib.loads, "a = [1, 2\n", "cannot parse the TOML file")):
        try:
            parse(text)
        except Exception as exc:
            line = describe(exc)
        else:
            raise AssertionError(f"{parse} accepted {text!r}")
        assert line.startswith(words) and "\n" not in line, line


def test_a_killed_lock_holder_does_not_block(tree: Path, tmp_path: Path) -> None:
    """A run killed while it held a lock: the kernel drops the lock, the next run goes on."""
    cache = tmp_path / "cache"
    key = bases.git_base(str(tree)).key
    lock = cache / "work" / f"{key}.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         "f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); time.sleep(600)\n", str(lock)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with lock.open("a") as fh, pytest.raises(BlockingIOError):  # it really holds it
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run = Started(["render", "--base", str(tree)], cache, tmp_path / "r")
        wait_for("kseries to wait for the lock",
                 lambda: "waiting for another kseries run" in run.err.read_text(), run)
        assert run.p.poll() is None
        holder.kill()  # SIGKILL: no clean-up of any kind
        holder.wait()
        code, out, err = run.wait(120)
        assert code == 0, err
        assert "5 patches and a cover letter in" in out
    finally:
        holder.kill()
        holder.wait()


def test_a_worktree_left_mid_git_am_and_dirty_is_repaired(tree: Path, tmp_path: Path) -> None:
    """What a run killed during `git am` leaves: the worktree at the base with a changed
    file, git am's state and git's index lock. The next check is as clean as the first."""
    cache = tmp_path / "cache"
    before = repo_state(tree)
    first = kseries(["check", "--base", str(tree), "--fast"], cache)
    assert first.returncode == 0, first.stderr
    key = bases.git_base(str(tree)).key
    am = cache / "trees" / key / "am"
    patch = next((cache / "series" / key / "v2").glob("*0003-*.patch"))
    git(am, "checkout", "-q", "--detach", git(tree, "rev-parse", "HEAD"))
    (am / "arch/x86/kvm/svm/svm.c").write_text("half written\n")
    (am / "stray.o").write_text("left by a killed build\n")
    stuck = subprocess.run(["git", "-C", str(am), "am", str(patch)], capture_output=True,
                           text=True, check=False, env={**os.environ, "GIT_COMMITTER_NAME": "x",
                                                        "GIT_COMMITTER_EMAIL": "x@x"})
    assert stuck.returncode != 0  # svm.c does not match the index: git am stops, keeps state
    gitdir = Path(git(am, "rev-parse", "--absolute-git-dir"))
    assert (gitdir / "rebase-apply").is_dir()
    (gitdir / "index.lock").write_text("")  # a killed git's lock
    again = kseries(["check", "--base", str(tree), "--fast"], cache)
    assert again.returncode == 0, again.stdout + again.stderr
    assert timeless(again.stdout) == timeless(first.stdout)
    assert not (gitdir / "rebase-apply").exists() and not (am / "stray.o").exists()
    # A worktree half made (its .git file missing) is made again.
    (am / ".git").unlink()
    third = kseries(["check", "--base", str(tree), "--fast"], cache)
    assert third.returncode == 0, third.stderr
    assert timeless(third.stdout) == timeless(first.stdout)
    assert repo_state(tree) == before
