"""The one subprocess wrapper: argv lists only, no shell, no chdir.

Every call is logged (argv, cwd, exit status). On failure the error names the
command, shows the first error lines and the path of the full log.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.errors import KseriesError

log = logging.getLogger("kseries.proc")

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
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.debug("run %s (cwd=%s)", " ".join(args), cwd or ".")
    try:
        if log_to is not None:
            log_to.parent.mkdir(parents=True, exist_ok=True)
            with log_to.open("a", encoding="utf-8", errors="replace") as fh:
                fh.write(f"$ {' '.join(args)}\n")
                fh.flush()
                cp = subprocess.run(
                    args, cwd=cwd, env=full_env, stdout=fh, stderr=subprocess.STDOUT,
                    input=input, text=True, timeout=timeout, check=False,
                )
            out = _tail(log_to)
            err = ""
        else:
            cp = subprocess.run(
                args, cwd=cwd, env=full_env, capture_output=True, input=input,
                text=True, errors="replace", timeout=timeout, check=False,
            )
            out, err = cp.stdout, cp.stderr
    except FileNotFoundError as exc:
        raise KseriesError(
            f"{args[0]}: command not found", hint="install it (make deps does) and retry"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise KseriesError(
            f"{what or args[0]} timed out after {timeout:.0f}s",
            hint=f"full log: {log_to}" if log_to else "",
        ) from exc
    result = Result(args, cp.returncode, out, err, log_to)
    log.debug("exit %d: %s", cp.returncode, args[0])
    if check and cp.returncode != 0:
        raise failure(result, what)
    return result


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
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.debug("feed %s (cwd=%s)", " ".join(args), cwd or ".")
    with subprocess.Popen(
        args, cwd=cwd, env=full_env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as child:
        assert child.stdin is not None
        try:
            for chunk in chunks:
                child.stdin.write(chunk)
            child.stdin.close()
        except BrokenPipeError:
            pass
        out = child.stdout.read() if child.stdout else b""
        err = child.stderr.read() if child.stderr else b""
        child.wait()
    result = Result(
        args, child.returncode, out.decode(errors="replace"), err.decode(errors="replace"), None
    )
    if result.returncode != 0:
        raise failure(result, what)
    return result


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
