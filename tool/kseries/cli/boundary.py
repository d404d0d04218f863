"""The one place where errors become a line on stderr and an exit code.

A KseriesError says what is wrong, where and what to do; its line is printed
as it is. Any other error is one kseries did not foresee (the disk filled up,
a permission, a file that is not what it should be, a git failure inside
GitPython, a bug): it still becomes one line, naming the command, what was
being done, the path or git command and the system's message, with exit 1;
``-v`` also prints the traceback for a bug report. Ctrl-C (SIGINT) and SIGTERM
stop every command kseries started, then give one line and exit 130. When the
reader of kseries' output goes away (``kseries render ... | head -1``), kseries
stops quietly with 141, as a command killed by SIGPIPE does (``git log | head``).
"""

from __future__ import annotations

import argparse
import errno
import os
import select
import signal
import sys
import threading
import tomllib
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePath
from types import FrameType, TracebackType

import git
import yaml

from kseries import proc
from kseries.base.cache import cache_root
from kseries.cli.ui import stop_drawing
from kseries.errors import KseriesError

INTERRUPTED = 130
PIPE_CLOSED = 128 + signal.SIGPIPE  # what the shell reports for `git log | head`

# What the innermost function that raised was doing, by its name.
_DOING = {
    "mkdir": "create the directory", "makedirs": "create the directory",
    "write_text": "write", "write_bytes": "write", "write_atomic": "write",
    "read_text": "read", "read_bytes": "read", "open": "open", "touch": "create",
    "rename": "rename", "replace": "rename", "unlink": "remove", "rmtree": "remove",
    "rmdir": "remove", "copy": "copy", "copy2": "copy", "copyfile": "copy",
    "copytree": "copy", "symlink_to": "link", "iterdir": "list", "scandir": "list",
    "listdir": "list", "stat": "look at", "chmod": "change the mode of",
    "mkstemp": "create a file in", "flush": "write", "write": "write", "read": "read",
    "close": "write",
}
_WHAT_TO_DO = {
    errno.ENOSPC: "free some space on that filesystem",
    errno.EDQUOT: "free some space (the disk quota is used up)",
    errno.EACCES: "make it accessible to this user",
    errno.EPERM: "make it accessible to this user",
    errno.EROFS: "that filesystem is read-only",
    errno.ENOTDIR: "a part of that path is a file, not a directory: move that file away",
    errno.EISDIR: "it is a directory, not a file",
    errno.ENOENT: "it does not exist",
}


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: its handler's exit code, or the error's."""
    try:
        try:
            with _interruptible():
                code: int = args.func(args)
        finally:
            stop_drawing()
        return code
    except KseriesError as exc:
        print(f"kseries: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno == errno.EPIPE and stdout_gone():
            _silence_stdout()
            return PIPE_CLOSED
        return _unforeseen(args, exc)
    except KeyboardInterrupt:
        print(f"kseries: interrupted: {args.command} stopped with every command it started; "
              "run it again to finish", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        return _unforeseen(args, exc)


def _unforeseen(args: argparse.Namespace, exc: Exception) -> int:
    if getattr(args, "verbose", False):
        traceback.print_exception(exc, file=sys.stderr)
    print(f"kseries: error: {args.command}: {describe(exc)}", file=sys.stderr)
    return 1


def stdout_gone() -> bool:
    """Whether nothing reads kseries' standard output any more (a pipe closed by its
    reader), as opposed to a pipe to a command kseries runs that broke."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's last flush at exit finds no pipe to
    complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM stop the commands kseries runs, then raise KeyboardInterrupt."""
    def stop(signum: int, frame: FrameType | None) -> None:
        proc.stop_all()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    saved: list[Callable[[int, FrameType | None], object] | int | None] = []
    for sig in signals:
        saved.append(signal.getsignal(sig))
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in zip(signals, saved, strict=True):
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def describe(exc: BaseException) -> str:
    """One line for an error kseries did not foresee: what, where, the system's words."""
    tb = exc.__traceback__
    if isinstance(exc, OSError):
        return _os_error(exc, tb)
    if isinstance(exc, git.exc.GitCommandError):
        argv = exc.command if isinstance(exc.command, list | tuple) else str(exc.command).split()
        words = " ".join(str(a) for a in argv[:3])
        stderr = _one_line(str(exc.stderr or "").replace("stderr:", "").strip(" '"))
        return (f"{words} failed (exit {exc.status})" + (f": {stderr}" if stderr else "")
                + "; rerun with -v for the traceback")
    if isinstance(exc, git.exc.GitError | git.exc.ODBError) or _raised_in_gitpython(tb):
        return (f"git: {_one_line(str(exc))}{_in(_repo_in(tb) or _path_in(tb))}; "
                "is a repository damaged (git fsck)? rerun with -v for the traceback")
    if isinstance(exc, tomllib.TOMLDecodeError):
        return (f"cannot parse the TOML file {_path_in(tb) or '(unknown)'}: "
                f"{_one_line(str(exc))}; fix that file")
    if isinstance(exc, yaml.YAMLError):
        return f"YAML{_in(_path_in(tb))}: {_one_line(str(exc))}; rerun with -v for the traceback"
    if isinstance(exc, UnicodeDecodeError):
        where = _path_in(tb) or "a file"
        return (f"cannot read {where} as {exc.encoding}: byte 0x{exc.object[exc.start]:02x} "
                f"at offset {exc.start} ({exc.reason}); is it a text file?")
    frame = _last_frame(tb)
    return (f"internal error: {type(exc).__name__}: {_one_line(str(exc))}{frame}; "
            "rerun with -v and report the traceback")


def _os_error(exc: OSError, tb: TracebackType | None) -> str:
    path = exc.filename if exc.filename is not None else _path_in(tb)
    doing = _doing(tb)
    what = f"cannot {doing}" if doing else "failed"
    if path is not None:
        what += f" {os.fsdecode(path)}"
    if exc.filename2 is not None:
        what += f" -> {os.fsdecode(exc.filename2)}"
    reason = exc.strerror or str(exc)
    todo = _WHAT_TO_DO.get(exc.errno or 0, "rerun with -v for the traceback")
    if path is not None and _under(os.fsdecode(path), cache_root()):
        todo += f", or set KSERIES_CACHE to another directory (the cache is {cache_root()})"
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{what}: {reason} [{name}]; {todo}"


def _frames(tb: TracebackType | None) -> list[FrameType]:
    """The traceback's frames, innermost first."""
    out = []
    while tb is not None:
        out.append(tb.tb_frame)
        tb = tb.tb_next
    return out[::-1]


def _doing(tb: TracebackType | None) -> str:
    for frame in _frames(tb):
        doing = _DOING.get(frame.f_code.co_name)
        if doing:
            return doing
    return ""


def _path_in(tb: TracebackType | None) -> str | None:
    """The file the innermost frames were working on: a pathlib ``self``, or a ``path``."""
    for frame in _frames(tb):
        for name in ("self", "path", "filename", "file", "src"):
            value = frame.f_locals.get(name)
            if isinstance(value, PurePath):
                return str(value)
    return None


def _raised_in_gitpython(tb: TracebackType | None) -> bool:
    frames = _frames(tb)
    module = str(frames[0].f_globals.get("__name__", "")) if frames else ""
    return module.split(".")[0] in ("git", "gitdb")


def _repo_in(tb: TracebackType | None) -> str | None:
    """The git directory of the innermost GitPython repository in the traceback's frames."""
    for frame in _frames(tb):
        for value in frame.f_locals.values():
            repo = value if isinstance(value, git.Repo) else getattr(value, "repo", None)
            if isinstance(repo, git.Repo):
                return str(repo.git_dir)
    return None


def _under(path: str, root: PurePath) -> bool:
    try:
        PurePath(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return False
    return True


def _in(path: str | None) -> str:
    return f" in {path}" if path else ""


def _last_frame(tb: TracebackType | None) -> str:
    frames = traceback.extract_tb(tb)
    own = [f for f in frames if f"{os.sep}kseries{os.sep}" in f.filename] or frames
    if not own:
        return ""
    f = own[-1]
    name = f.filename.split(f"{os.sep}kseries{os.sep}")[-1]
    return f" at {name}:{f.lineno} in {f.name}()"


def _one_line(text: str) -> str:
    return " ".join(text.split())
