"""The ssh transport: a lab machine reached with OpenSSH.

Copy run-tests and the selftests into a fresh directory on the host, run them
under a timeout, bring back the output, remove the directory. Every ssh and scp
call has a connect timeout and an overall timeout; a host that cannot be
reached, refuses the key or stops answering is an infrastructure failure.

An optional ``install_hook`` (a local command from the inventory) installs and
boots the built kernel, e.g. with kexec; the host is then waited for. Without
one, the report says that the host's own kernel was tested.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from kseries import proc
from kseries.errors import KseriesError
from kseries.run.initramfs import GuestFiles
from kseries.run.inventory import Host, SshSettings
from kseries.run.outcome import GuestRun

SSH_FAILED = 255  # ssh's own exit status for connection and authentication failures
EXIT_INFRA = 3


def options(s: SshSettings, known_hosts: Path) -> list[str]:
    """-o options shared by ssh and scp; the inventory's own come first and win."""
    opts = [*s.options, "BatchMode=yes", f"ConnectTimeout={max(1, round(s.connect_timeout))}",
            "StrictHostKeyChecking=accept-new", f"UserKnownHostsFile={known_hosts}",
            "ServerAliveInterval=5", "ServerAliveCountMax=3", "LogLevel=ERROR"]
    out = []
    for o in opts:
        out += ["-o", o]
    if s.key:
        out += ["-o", "IdentitiesOnly=yes", "-i", str(s.key)]
    return out


class Session:
    """ssh/scp to one host with its settings; every call bounded by a timeout."""

    def __init__(self, host: Host, work: Path) -> None:
        if host.ssh is None:
            raise KseriesError(f"{host.name}: not an ssh host")
        self.host = host
        self.s: SshSettings = host.ssh
        self.opts = options(self.s, work / "known_hosts")
        self.target = f"{self.s.user}@{self.s.address}"

    def _fail(self, what: str, r: proc.Result) -> KseriesError:
        lines = proc.key_lines(r.stderr, 3)
        detail = " | ".join(ln.strip() for ln in lines) or f"exit {r.returncode}"
        return KseriesError(f"{self.host.name}: {what} {self.target} port {self.s.port}: {detail}",
                            exit_code=EXIT_INFRA)

    def _timed(self, argv: list[str], timeout: float, what: str) -> proc.Result:
        try:
            return proc.run(argv, timeout=timeout, check=False, what=what)
        except KseriesError as exc:
            raise KseriesError(f"{self.host.name}: {exc.message}", exit_code=EXIT_INFRA) from exc

    def run(self, command: list[str], timeout: float) -> proc.Result:
        """Run ``command`` (quoted for the remote shell); ssh failures raise."""
        remote = " ".join(shlex.quote(c) for c in command)
        argv = ["ssh", "-p", str(self.s.port), *self.opts, self.target, remote]
        r = self._timed(argv, timeout + self.s.connect_timeout, f"ssh {self.target} {command[0]}")
        if r.returncode == SSH_FAILED:
            raise self._fail("cannot run on", r)
        return r

    def copy(self, sources: list[Path], remote_dir: str, timeout: float) -> None:
        argv = ["scp", "-q", "-r", "-P", str(self.s.port), *self.opts,
                *[str(s) for s in sources], f"{self.target}:{remote_dir}/"]
        r = self._timed(argv, timeout + self.s.connect_timeout, f"scp to {self.target}")
        if r.returncode != 0:
            raise self._fail("cannot copy to", r)

    def wait_up(self, timeout: float) -> str:
        """Poll until the host answers (after a reboot); returns its ``uname -r``."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                r = self.run(["uname", "-r"], timeout=self.s.connect_timeout)
                if r.returncode == 0:
                    return r.stdout.strip()
            except KseriesError as exc:
                last = exc.message
            time.sleep(2)
        raise KseriesError(f"{self.host.name}: did not come back within {timeout:.0f}s "
                           f"after the install hook ({last})", exit_code=EXIT_INFRA)


def install_kernel(session: Session, kernel: Path) -> str:
    """Run the inventory's install hook locally, wait for the host; returns a note."""
    s = session.s
    values = {"kernel": str(kernel), "address": s.address, "user": s.user,
              "port": str(s.port), "host": session.host.name}
    try:
        argv = [part.format(**values) for part in s.install_hook]
    except (KeyError, IndexError) as exc:
        raise KseriesError(f"{session.host.name}: install_hook: unknown placeholder {exc}",
                           hint="use {kernel} {address} {user} {port} {host}") from exc
    r = proc.run(argv, timeout=s.boot_timeout, check=False, what=f"install hook {argv[0]}")
    if r.returncode != 0:
        detail = " | ".join(proc.key_lines(r.stdout + r.stderr, 3))
        raise KseriesError(f"{session.host.name}: install hook failed (exit {r.returncode}): "
                           f"{detail}", exit_code=EXIT_INFRA)
    release = session.wait_up(s.boot_timeout)
    return f"built kernel {kernel.name} installed by the hook; the host runs {release}"


def stage(tests: Mapping[str, Path], guest: GuestFiles, work: Path) -> Path:
    """A local directory laid out as run-tests expects: run-tests, bin/<test>."""
    d = work / "stage"
    if d.exists():
        shutil.rmtree(d)
    (d / "bin").mkdir(parents=True)
    shutil.copy2(guest.run_tests, d / "run-tests")
    for name, path in tests.items():
        shutil.copy2(path, d / "bin" / name)
    return d


def run(host: Host, tests: Mapping[str, Path], guest: GuestFiles, work: Path, *,
        kernel: Path | None, test_timeout: int) -> GuestRun:
    session = Session(host, work)
    s = session.s
    t0 = time.monotonic()
    if s.install_hook:
        if kernel is None:
            raise KseriesError(f"{host.name}: has an install hook but no kernel was given")
        note = install_kernel(session, kernel)
    else:
        release = session.run(["uname", "-r"], timeout=s.connect_timeout).stdout.strip()
        note = (f"no install hook: the host's own kernel {release} was tested, "
                "not the built one")
    local = stage(tests, guest, work)
    made = session.run(["mktemp", "-d", f"{s.remote_dir}/kseries.XXXXXX"], timeout=30)
    remote = made.stdout.strip()
    if made.returncode != 0 or not remote.startswith(s.remote_dir):
        raise KseriesError(f"{host.name}: cannot make a directory under {s.remote_dir}: "
                           f"{made.stderr.strip()}", exit_code=EXIT_INFRA)
    try:
        session.copy([local / "run-tests", local / "bin"], remote, timeout=s.run_timeout)
        r = session.run(["env", f"TEST_TIMEOUT={test_timeout}", "sh", f"{remote}/run-tests",
                         remote, *tests], timeout=s.run_timeout)
    finally:
        # Cleaning up is best effort; the run's own result matters more.
        with contextlib.suppress(KseriesError):
            session.run(["rm", "-rf", remote], timeout=30)
    (work / "output.log").write_text(r.stdout + r.stderr)
    return GuestRun(output=r.stdout, kernel_note=note, duration=time.monotonic() - t0,
                    logs={"output": work / "output.log"})
