"""Helpers for the fault tests: the real `kseries` command in a subprocess, the
user's repository before and after, interrupting a run at a chosen stage.

Every run here is ``python -m kseries`` (the installed entry point's module) in
a process of its own, with its own cache (``KSERIES_CACHE``). A run is
interrupted the way a terminal does it: SIGINT to its process group.

Where a stage is too quick to interrupt by hand, the command kseries runs at
that stage (git format-patch, make, get_maintainer.pl) is made to wait: the
synthetic tree's kernel scripts are stand-ins that write their pid to
``$KSERIES_TEST_PAUSE_FILE`` and sleep, and for git a wrapper first in PATH does
the same before it runs the real git. kseries itself is not changed for this.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from synthetic import git, make_tree

KSERIES = (sys.executable, "-m", "kseries")
PAUSE = "KSERIES_TEST_PAUSE_FILE"
SLEEP = 120  # how long a paused command would sleep if nothing stopped it

# The synthetic tree's kernel scripts, as far as the checks and submit run them.
CHECKPATCH = """\
#!/usr/bin/perl
# Stand-in for checkpatch.pl: every patch is clean.
print "total: 0 errors, 0 warnings, 0 checks, 1 lines checked\\n";
exit 0;
"""
GET_MAINTAINER = f"""\
#!/usr/bin/perl
# Stand-in for get_maintainer.pl: the KVM list and one maintainer; it can be made to wait.
if ($ENV{{{PAUSE}}}) {{
    open(my $fh, '>>', $ENV{{{PAUSE}}}); print $fh "$$\\n"; close($fh); sleep({SLEEP});
}}
print "Paolo Bonzini <pbonzini\\@redhat.com> (maintainer:KERNEL VIRTUAL MACHINE (KVM))\\n";
print "kvm\\@vger.kernel.org (open list:KERNEL VIRTUAL MACHINE (KVM))\\n";
exit 0;
"""
MAINTAINERS = """\
KERNEL VIRTUAL MACHINE (KVM)
M:	Paolo Bonzini <pbonzini@redhat.com>
L:	kvm@vger.kernel.org
F:	arch/x86/kvm/
"""
# A stand-in for the kernel's build system: it configures and "builds" into O=.
MAKEFILE = f"""\
VERSION = 6
PATCHLEVEL = 99
O ?= .
.PHONY: defconfig tinyconfig olddefconfig arch/x86/kvm/ arch/x86/kernel/cpu/
defconfig:
\tmkdir -p $(O) && : > $(O)/.config
tinyconfig:
\t@if [ -n "$${PAUSE}" ]; then echo $$$$ >> "$${PAUSE}"; sleep {SLEEP}; fi
\tmkdir -p $(O) && : > $(O)/.config
olddefconfig:
\t@true
arch/x86/kvm/ arch/x86/kernel/cpu/:
\t@if [ -n "$${PAUSE}" ]; then echo $$$$ >> "$${PAUSE}"; sleep {SLEEP}; fi
\tmkdir -p $(O)/$@ && echo built > $(O)/$@built.o
"""


def fault_tree(root: Path) -> Path:
    """The synthetic tree with stand-ins for the scripts that check and submit run."""
    return make_tree(root, {"scripts/checkpatch.pl": CHECKPATCH,
                            "scripts/get_maintainer.pl": GET_MAINTAINER,
                            "MAINTAINERS": MAINTAINERS, "Makefile": MAKEFILE})


def git_wrapper(directory: Path, word: str) -> Path:
    """A ``git`` that waits (see PAUSE) before running the real git for ``git ... WORD``."""
    real = shutil.which("git")
    assert real, "git is not installed"
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" {word} "*) if [ -n "${PAUSE}" ]; then '
        f'echo $$ >> "${PAUSE}"; sleep {SLEEP}; fi;; esac\n'
        f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    return directory


def env_for(cache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KSERIES_CACHE", PAUSE)}
    env["KSERIES_CACHE"] = str(cache)
    env.update(extra or {})
    return env


def kseries(args: Sequence[str], cache: Path, extra: Mapping[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KSERIES, *args], env=env_for(cache, extra), capture_output=True,
                          text=True, timeout=timeout, check=False)


def error_line(stderr: str, stdout: str = "") -> str:
    """The one line a failed run ends with; there is no traceback and no other such line."""
    assert "Traceback" not in stderr + stdout, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    own = [ln for ln in lines if ln.startswith("kseries:")]
    assert own == [lines[-1]], f"not one kseries: line at the end of stderr:\n{stderr}"
    return lines[-1]


def repo_state(repo: Path) -> tuple[str, ...]:
    """What a user would notice changed in their repository: HEAD, refs, the work tree."""
    return (git(repo, "rev-parse", "HEAD"),
            git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
            git(repo, "status", "--porcelain", "--ignored"),
            git(repo, "worktree", "list", "--porcelain"),
            git(repo, "count-objects", "-v"))


def timeless(text: str) -> str:
    """A check's output without its durations (`... in 13.1s`), which differ run to run."""
    return re.sub(r" in \d+\.\ds$", " in Ns", text, flags=re.M)


class Started:
    """A kseries run in a session (and process group) of its own, like a terminal's job."""

    def __init__(self, args: Sequence[str], cache: Path, work: Path,
                 extra: Mapping[str, str] | None = None) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.out, self.err = work / "stdout", work / "stderr"
        with self.out.open("w") as o, self.err.open("w") as e:
            self.p = subprocess.Popen([*KSERIES, *args], env=env_for(cache, extra), stdout=o,
                                      stderr=e, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def interrupt(self, group: bool = True) -> None:
        """Ctrl-C: SIGINT to the run's process group (as a terminal sends it), or only to
        kseries (as `kill -INT PID` does)."""
        if group:
            os.killpg(self.p.pid, signal.SIGINT)
        else:
            os.kill(self.p.pid, signal.SIGINT)

    def wait(self, timeout: float = 600) -> tuple[int, str, str]:
        try:
            code = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return code, self.out.read_text(), self.err.read_text()

    def kill(self) -> None:
        for pid in [self.p.pid, *members(self.p.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.p.wait()


def wait_for(what: str, ready: Callable[[], bool], run: Started | None = None,
             timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if run is not None and run.p.poll() is not None:
            raise AssertionError(f"kseries ended before {what}: {run.err.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stat(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # state, ppid, pgrp, ...


def members(pgid: int) -> list[int]:
    """The live processes (not zombies) of process group ``pgid``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(d)
            if st and int(st[2]) == pgid and st[0] != "Z":
                out.append(int(d))
    return out


def group_of(pid: int) -> int:
    st = _stat(str(pid))
    assert st, f"process {pid} is gone"
    return int(st[2])


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose argv contains ``text``."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or d == str(os.getpid()):
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        st = _stat(d)
        if text in argv and st and st[0] != "Z":
            found.append(argv)
    return found


def paused_pids(pause: Path) -> list[int]:
    """The pids the paused stand-ins wrote (each sleeps from then on)."""
    text = pause.read_text() if pause.exists() else ""
    return [int(w) for w in text.split() if w.isdigit()]
