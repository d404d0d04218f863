"""The one subprocess wrapper: argv lists only, no shell, no chdir.

Every call is logged (argv, cwd, exit status). On failure the error names the
command, shows the first error lines and the path of the full log.

Each command runs in a process group of its own, with no terminal input, so
that stopping it stops everything it started (make's jobs, QEMU): at a timeout,
and when kseries is interrupted. ``stop_all`` (the CLI calls it on Ctrl-C)
sends SIGTERM to every running command's group, SIGKILL to what is left after
``GRACE`` seconds, and makes every later ``run`` raise KeyboardInterrupt, so
that threads running commands (the harness's hosts) stop too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kseries.errors import KseriesError

log = logging.getLogger("kseries.proc")

GRACE = 5.0  # seconds a stopped command has to clean up (make removes half-made targets)

_live: dict[int, subprocess.Popen[Any]] = {}  # pid (= process group) -> running command
_live_lock = threading.RLock()  # re-entrant: stop_all runs in a signal handler
_stopping = threading.Event()

_ERROR_LINE = re.compile(r"(error|Error|ERROR|fatal|undefined reference|No such file|\*\*\*)")


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    log: Path | None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def key_lines(text: str, limit: int = 8) -> list[str]:
    """The lines of a failed command's output worth showing first."""
    lines = [ln for ln in text.splitlines() if _ERROR_LINE.search(ln)]
    if not lines:
        lines = [ln for ln in text.splitlines() if ln.strip()][-limit:]
    return lines[:limit]


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
    log_to: Path | None = None,
    check: bool = True,
    what: str = "",
) -> Result:
    """Run ``argv``; ``env`` adds to (not replaces) the environment.

    With ``log_to`` stdout and stderr go to that file (appended) instead of memory,
    which is what long builds want; ``Result.stdout`` then holds the log's tail.
    """
    args = tuple(os.fspath(a) for a in argv)
    full_env = _environ(env)
    log.debug("run %s (cwd=%s)", " ".join(args), cwd or ".")
    try:
        if log_to is not None:
            log_to.parent.mkdir(parents=True, exist_ok=True)
            with log_to.open("a", encoding="utf-8", errors="replace") as fh:
                fh.write(f"$ {' '.join(args)}\n")
                fh.flush()
                code, _, _ = _communicate(args, cwd, full_env, input, timeout, fh, fh)
            out = _tail(log_to)
            err = ""
        else:
            code, out, err = _communicate(args, cwd, full_env, input, timeout,
                                          subprocess.PIPE, subprocess.PIPE)
    except FileNotFoundError as exc:
        if exc.filename not in (args[0], None):
            raise  # cwd or a log file, not the command
        raise _not_found(args) from exc
    except subprocess.TimeoutExpired as exc:
        raise KseriesError(
            f"{what or args[0]} timed out after {timeout:.0f}s",
            hint=f"full log: {log_to}" if log_to else "",
        ) from exc
    result = Result(args, code, out, err, log_to)
    log.debug("exit %d: %s", code, args[0])
    if check and code != 0:
        raise failure(result, what)
    return result


def _environ(env: Mapping[str, str] | None) -> dict[str, str]:
    """kseries' environment with ``env`` added: what every command runs with."""
    full = dict(os.environ)
    if env:
        full.update(env)
    return full


def _not_found(args: tuple[str, ...]) -> KseriesError:
    return KseriesError(f"{args[0]}: command not found",
                        hint="install it (make deps does) and retry")


def _communicate(
    args: tuple[str, ...], cwd: Path | None, env: Mapping[str, str], input: str | None,
    timeout: float | None, stdout: int | IO[str], stderr: int | IO[str],
) -> tuple[int, str, str]:
    """Run a command in its own process group; (exit status, stdout, stderr)."""
    child = _start(args, cwd=cwd, env=env, text=True, errors="replace",
                   stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                   stdout=stdout, stderr=stderr)
    with child:
        try:
            out, err = child.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            child.communicate()
            raise
        except BaseException:  # KeyboardInterrupt: stop it and what it started
            _stop(child)
            raise
        finally:
            _forget(child)
    _after(child)
    return child.returncode, out or "", err or ""


def _start(args: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
    with _live_lock:
        if _stopping.is_set():
            raise KeyboardInterrupt  # interrupted: start nothing new
        child: subprocess.Popen[Any] = subprocess.Popen(args, process_group=0, **kw)
        _live[child.pid] = child
    return child


def _forget(child: subprocess.Popen[Any]) -> None:
    with _live_lock:
        _live.pop(child.pid, None)


def _after(child: subprocess.Popen[Any]) -> None:
    """A command that ended because kseries was interrupted: its result means nothing."""
    if _stopping.is_set():
        _signal_group(child.pid, signal.SIGKILL)
        raise KeyboardInterrupt


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop(child: subprocess.Popen[Any]) -> None:
    """SIGTERM to the command's group, SIGKILL after GRACE; then nothing of it runs."""
    _signal_group(child.pid, signal.SIGTERM)
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=GRACE)
    finally:  # also when a second Ctrl-C cuts the grace short
        _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def stop_all() -> None:
    """Stop every running command (kseries was interrupted); start no new one.

    Safe to call from a signal handler: it only sends signals, and leaves waiting
    to the threads that run the commands (SIGKILL follows after GRACE seconds).
    """
    _stopping.set()
    with _live_lock:
        groups = list(_live)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    if groups:
        timer = threading.Timer(GRACE, _kill_left)
        timer.daemon = True
        timer.start()


def _kill_left() -> None:
    with _live_lock:
        groups = list(_live)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)


def stopping() -> bool:
    """Whether stop_all was called: kseries is being interrupted."""
    return _stopping.is_set()


def feed(
    argv: Sequence[str | os.PathLike[str]],
    chunks: Iterable[bytes],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str = "",
) -> Result:
    """Run ``argv`` streaming ``chunks`` into its stdin (e.g. ``git fast-import``)."""
    args = tuple(os.fspath(a) for a in argv)
    full_env = _environ(env)
    log.debug("feed %s (cwd=%s)", " ".join(args), cwd or ".")
    child = _start(args, cwd=cwd, env=full_env, stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with child:
        assert child.stdin is not None
        try:
            try:
                for chunk in chunks:
                    child.stdin.write(chunk)
            except BrokenPipeError:
                pass  # it stopped reading: its exit status and stderr say why
            out, err = child.communicate()  # closes its stdin
        except BaseException:  # KeyboardInterrupt, or the chunks' own error
            _stop(child)
            raise
        finally:
            _forget(child)
    _after(child)
    result = Result(
        args, child.returncode, out.decode(errors="replace"), err.decode(errors="replace"), None
    )
    if result.returncode != 0:
        raise failure(result, what)
    return result


class Running:
    """A command started by ``spawn``: it runs beside kseries until ``wait`` or ``stop``."""

    def __init__(self, args: tuple[str, ...], child: subprocess.Popen[Any], log_to: Path,
                 fh: IO[str]) -> None:
        self.args, self._child, self.log, self._fh = args, child, log_to, fh

    def ended(self) -> bool:
        return self._child.poll() is not None

    def wait(self) -> Result:
        """Its exit status and the log's tail, once it has ended (not checked)."""
        try:
            code = self._child.wait()
        except BaseException:  # KeyboardInterrupt: stop it and what it started
            _stop(self._child)
            raise
        finally:
            self._end()
        _after(self._child)
        return Result(self.args, code, _tail(self.log), "", self.log)

    def stop(self) -> None:
        """Stop it and what it started (SIGTERM, SIGKILL after GRACE), if it still runs."""
        try:
            if self._child.poll() is None:
                _stop(self._child)
        finally:
            self._end()

    def _end(self) -> None:
        _forget(self._child)
        self._fh.close()


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_to: Path,
    env: Mapping[str, str] | None = None,
) -> Running:
    """Start ``argv`` and return at once; stdout and stderr go to ``log_to`` (appended).

    ``env`` adds to the environment, as for ``run``.

    Like ``run``'s commands it has a process group of its own, and ``stop_all``
    stops it. Whoever spawns it waits for it or stops it.
    """
    args = tuple(os.fspath(a) for a in argv)
    log.debug("spawn %s", " ".join(args))
    log_to.parent.mkdir(parents=True, exist_ok=True)
    fh = log_to.open("a", encoding="utf-8", errors="replace")
    try:
        fh.write(f"$ {' '.join(args)}\n")
        fh.flush()
        child = _start(args, env=_environ(env), text=True, errors="replace",
                       stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
    except FileNotFoundError as exc:
        fh.close()
        raise _not_found(args) from exc
    except BaseException:
        fh.close()
        raise
    return Running(args, child, log_to, fh)


def failure(result: Result, what: str = "") -> KseriesError:
    """The error for a failed command: its name, key lines and the log path."""
    name = what or " ".join(result.argv[:3])
    lines = key_lines(result.stdout + "\n" + result.stderr)
    detail = " | ".join(ln.strip() for ln in lines[:3])
    hint = f"full log: {result.log}" if result.log else ""
    msg = f"{name} failed (exit {result.returncode})"
    if detail:
        msg += f": {detail}"
    return KseriesError(msg, hint=hint)


def _tail(path: Path, size: int = 64 * 1024) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        fh.seek(max(0, end - size))
        return fh.read().decode("utf-8", errors="replace")
