"""The ssh transport: a lab machine reached with OpenSSH.

The lifecycle of one host:

1. install (optional): the inventory's ``install_hook``, a local command (the
   lab's power / netboot control), installs the built kernel and reboots the
   host into it;
2. boot: wait for ssh, up to ``boot_timeout``; a refused key fails at once;
3. verify: ``uname -r`` and ``uname -v`` must be the release and build version
   in the bzImage's boot header: a host back on another kernel is an
   infrastructure failure naming both;
4. run: copy run-tests and the selftests into a fresh directory, run them
   under a timeout, bring back the output, remove the directory.

Every ssh and scp call has a connect timeout and an overall timeout. A host
that cannot be reached, refuses the key, stops answering or is lost halfway is
an infrastructure failure, reported with the last output seen. Without a hook
the report says that the host's own kernel was tested.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from kseries import proc
from kseries.build import bzimage
from kseries.errors import KseriesError
from kseries.run.initramfs import GuestFiles
from kseries.run.inventory import Host, SshSettings
from kseries.run.outcome import GuestRun, tail

SSH_FAILED = 255  # ssh's own exit status for connection and authentication failures
EXIT_INFRA = 3
REFUSED = ("Permission denied", "Too many authentication failures")
LAST_LINES = 3


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


class SshFailure(KseriesError):
    """ssh itself failed (exit 255): ``refused`` when the host turned the key down."""

    def __init__(self, message: str, *, refused: bool, output: str = "") -> None:
        super().__init__(message, exit_code=EXIT_INFRA)
        self.refused = refused
        self.output = output


class Session:
    """ssh/scp to one host with its settings; every call bounded by a timeout."""

    def __init__(self, host: Host, work: Path) -> None:
        if host.ssh is None:
            raise KseriesError(f"{host.name}: not an ssh host")
        self.host = host
        self.s: SshSettings = host.ssh
        self.opts = options(self.s, work / "known_hosts")
        self.target = f"{self.s.user}@{self.s.address}"

    @property
    def where(self) -> str:
        return f"{self.target} port {self.s.port}"

    def _fail(self, what: str, r: proc.Result) -> SshFailure:
        lines = proc.key_lines(r.stderr, 3)
        detail = " | ".join(ln.strip() for ln in lines) or f"exit {r.returncode}"
        refused = any(word in r.stderr for word in REFUSED)
        if refused:
            key = f"the key {self.s.key}" if self.s.key else "every key offered"
            return SshFailure(f"{self.host.name}: {self.where} refused {key} for user "
                              f"{self.s.user}: {detail}", refused=True, output=r.stdout)
        return SshFailure(f"{self.host.name}: {what} {self.where}: {detail}", refused=False,
                          output=r.stdout)

    def _timed(self, argv: list[str], timeout: float, what: str) -> proc.Result:
        try:
            return proc.run(argv, timeout=timeout, check=False, what=what)
        except KseriesError as exc:
            raise KseriesError(f"{self.host.name}: {exc.message}", exit_code=EXIT_INFRA) from exc

    def run(self, command: list[str], timeout: float) -> proc.Result:
        """Run ``command`` (quoted for the remote shell); ssh failures raise SshFailure."""
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
        if r.returncode == SSH_FAILED:
            raise self._fail("cannot copy to", r)
        if r.returncode != 0:
            detail = " | ".join(ln.strip() for ln in proc.key_lines(r.stderr, 3))
            raise KseriesError(f"{self.host.name}: cannot copy to {self.where}:{remote_dir}: "
                               f"{detail or f'exit {r.returncode}'}", exit_code=EXIT_INFRA)

    def uname(self, timeout: float) -> tuple[str, str]:
        """The host's ``uname -r`` and ``uname -v``."""
        r = self.run(["uname", "-r", "-v"], timeout=timeout)
        if r.returncode != 0:
            raise KseriesError(f"{self.host.name}: uname failed on {self.where}: "
                               f"{r.stderr.strip()}", exit_code=EXIT_INFRA)
        # "uname -r -v" prints "RELEASE VERSION" on one line; the release has no space.
        release, _, version = r.stdout.strip().partition(" ")
        return release, version

    def wait_up(self, timeout: float) -> tuple[str, str]:
        """Poll until the host answers (after a reboot); returns its uname -r and -v.

        A host that answers but refuses the key is not waited for: that is not
        going to change while it boots.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            left = max(1.0, min(self.s.connect_timeout, deadline - time.monotonic()))
            try:
                return self.uname(left)
            except SshFailure as exc:
                if exc.refused:
                    raise
                last = exc.message
            except KseriesError as exc:
                last = exc.message
            time.sleep(1)
        raise KseriesError(f"{self.host.name}: did not come back within {timeout:.0f}s "
                           f"after the install hook ({last or 'no answer'})",
                           exit_code=EXIT_INFRA)


def install_kernel(session: Session, kernel: Path) -> tuple[str, dict[str, float]]:
    """Run the install hook, wait for the host, check it runs ``kernel``.

    Returns the kernel note and the seconds the hook and the boot took.
    """
    s = session.s
    built = bzimage.read(kernel)
    values = {"kernel": str(kernel), "address": s.address, "user": s.user,
              "port": str(s.port), "host": session.host.name}
    try:
        argv = [part.format(**values) for part in s.install_hook]
    except (KeyError, IndexError) as exc:
        raise KseriesError(f"{session.host.name}: install_hook: unknown placeholder {exc}",
                           hint="use {kernel} {address} {user} {port} {host}") from exc
    t0 = time.monotonic()
    r = proc.run(argv, timeout=s.boot_timeout, check=False, what=f"install hook {argv[0]}")
    if r.returncode != 0:
        detail = " | ".join(proc.key_lines(r.stdout + r.stderr, 3))
        raise KseriesError(f"{session.host.name}: install hook failed (exit {r.returncode}): "
                           f"{detail}", exit_code=EXIT_INFRA)
    t1 = time.monotonic()
    release, version = session.wait_up(s.boot_timeout)
    t2 = time.monotonic()
    if not built.matches(release, version):
        raise KseriesError(f"{session.host.name}: came back on kernel {release} ({version}), "
                           f"not the built {built.release} ({built.version}) of {kernel}",
                           hint="the install hook did not boot the kernel it was given",
                           exit_code=EXIT_INFRA)
    note = (f"built kernel {built.release} ({built.version}) installed by the hook; "
            "uname -r and -v match it")
    return note, {"install": t1 - t0, "boot": t2 - t1}


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


def lost(exc: SshFailure, output: str, t0: float, note: str, notes: list[str],
         work: Path) -> GuestRun:
    """The run of a host that went away in the middle: its last output, not a test result."""
    seen = [ln for ln in tail(output, LAST_LINES) if ln.strip()]
    last = " | ".join(seen) if seen else "nothing"
    (work / "output.log").write_text(output)
    return GuestRun(output=output, console=output,
                    infra_error=f"host lost during the run: {exc.message.rstrip('.')}; "
                                f"last output: {last}",
                    kernel_note=note, duration=time.monotonic() - t0,
                    logs={"output": work / "output.log"}, notes=notes)


def run(host: Host, tests: Mapping[str, Path], guest: GuestFiles, work: Path, *,
        kernel: Path | None, test_timeout: int) -> GuestRun:
    session = Session(host, work)
    s = session.s
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    if s.install_hook:
        if kernel is None:
            raise KseriesError(f"{host.name}: has an install hook but no kernel was given")
        note, timings = install_kernel(session, kernel)
    else:
        release, version = session.uname(s.connect_timeout)
        note = (f"no install hook: the host's own kernel {release} ({version}) was tested, "
                "not the built one")
    t_run = time.monotonic()
    local = stage(tests, guest, work)
    made = session.run(["mktemp", "-d", f"{s.remote_dir}/kseries.XXXXXX"], timeout=30)
    remote = made.stdout.strip()
    if made.returncode != 0 or not remote.startswith(s.remote_dir):
        raise KseriesError(f"{host.name}: cannot make a directory under {s.remote_dir}: "
                           f"{made.stderr.strip()}", exit_code=EXIT_INFRA)
    notes: list[str] = []
    try:
        session.copy([local / "run-tests", local / "bin"], remote, timeout=s.run_timeout)
        r = session.run(["env", f"TEST_TIMEOUT={test_timeout}", "sh", f"{remote}/run-tests",
                         remote, *tests], timeout=s.run_timeout)
    except SshFailure as exc:
        timings["run"] = time.monotonic() - t_run
        notes.append(_lifecycle(timings))
        return lost(exc, exc.output, t0, note, notes, work)
    finally:
        # Cleaning up is best effort; the run's own result matters more.
        with contextlib.suppress(KseriesError):
            session.run(["rm", "-rf", remote], timeout=30)
    timings["run"] = time.monotonic() - t_run
    notes.append(_lifecycle(timings))
    (work / "output.log").write_text(r.stdout + r.stderr)
    return GuestRun(output=r.stdout, kernel_note=note, duration=time.monotonic() - t0,
                    logs={"output": work / "output.log"}, notes=notes)


def _lifecycle(timings: dict[str, float]) -> str:
    return "lifecycle: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
