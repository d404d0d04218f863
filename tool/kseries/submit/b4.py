"""A ``b4 prep`` branch of the series, for ``b4 send``.

b4 0.16's "commit" cover strategy (b4/ez.py): the branch ``b4/<slug>`` starts
with an empty commit whose message is the cover letter, followed by a line
``--- b4-submit-tracking ---``, a comment line and the tracking JSON
(revision, change-id, prefixes, presubject); the patches follow it. b4 finds
the cover commit with ``git log --grep`` limited to the last year and to the
user's ``user.email`` as committer, so every commit of the branch is
committed now, by the repository's user (the authors and author dates are
the series'). The recipients go into the cover letter as ``To:``/``Cc:``
trailers, which is where ``b4 prep --auto-to-cc`` puts them. Only the new
branch (and its ``branch.<name>.b4-prep-cover-strategy``) is written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kseries import proc
from kseries.errors import KseriesError
from kseries.render.series import RenderedSeries
from kseries.submit.outbox import Version, split_mail
from kseries.submit.recipients import Recipients

MAGIC_MARKER = "--- b4-submit-tracking ---"
MAGIC_COMMENT = "# This section is used internally by b4 prep for tracking purposes."
_SHORTLOG_HEAD = re.compile(r"^\S.* \(\d+\):$")


@dataclass(frozen=True)
class Prepared:
    repo: Path
    branch: str
    cover: str  # the cover commit
    tip: str
    change_id: str
    info: dict[str, str]  # what `b4 prep --show-info` says about the branch


def slug(name: str) -> str:
    """b4's branch slug: ``b4/<slug>``."""
    return re.sub(r"\W+", "-", name).strip("-").lower()


def cover_blurb(series: RenderedSeries) -> tuple[str, str]:
    """(subject without its [tags], blurb) of the rendered cover letter.

    The blurb is the text before git's shortlog (b4 adds the shortlog,
    diffstat and base-commit itself).
    """
    _, headers, body = split_mail(series.files[0].read_text())
    subject = re.sub(r"^\[[^\]]*\]\s*", "", dict(headers).get("Subject", ""))
    lines = body.split("\n")
    end = len(lines)
    for i, line in enumerate(lines):
        if _SHORTLOG_HEAD.match(line) and (i == 0 or not lines[i - 1].strip()):
            end = i
            break
    return subject, "\n".join(lines[:end]).strip()


def change_id(series: RenderedSeries) -> str:
    """``YYYYMMDD-<slug>-<12 hex>`` like b4's, but derived from the series."""
    day = series.manifest.patches[0].date.strftime("%Y%m%d")
    digest = hashlib.sha1(f"{series.manifest.name}\0{series.base.commit}".encode()).hexdigest()
    return f"{day}-{slug(series.manifest.name)}-{digest[:12]}"


def cover_message(series: RenderedSeries, recipients: Recipients, version: Version) -> str:
    subject, blurb = cover_blurb(series)
    blurb = re.sub(r"^(#.*)$", r">\1", blurb, flags=re.M)  # b4 strips lines starting with #
    trailers = [f"To: {a}" for a in recipients.to] + [f"Cc: {a}" for a in recipients.cc]
    tracking = {"series": {
        "revision": version.number,
        "change-id": change_id(series),
        "prefixes": ["RFC"] if version.rfc else [],
        "presubject": "",
    }}
    magic = f"{MAGIC_MARKER}\n{MAGIC_COMMENT}\n{json.dumps(tracking, indent=2)}"
    parts = [subject, blurb, "\n".join(trailers), magic]
    return "\n\n".join(p for p in parts if p) + "\n"


def _git_dir(path: Path) -> Path:
    res = proc.run(["git", "-C", path, "rev-parse", "--absolute-git-dir"], check=False)
    if not res.ok:
        raise KseriesError(f"--repo {path}: not a git repository")
    return Path(res.stdout.strip())


def _user(repo: Path) -> str:
    res = proc.run(["git", "-C", repo, "config", "user.email"], check=False)
    if not res.ok or not res.stdout.strip():
        raise KseriesError(
            f"--repo {repo}: git has no user.email there",
            hint="b4 finds its cover letter by your user.email: set user.name and user.email",
        )
    return res.stdout.strip()


def prepare(
    series: RenderedSeries,
    recipients: Recipients,
    repo: Path,
    version: Version | None = None,
    *,
    force: bool = False,
) -> Prepared:
    """Create ``b4/<slug>`` in ``repo``: the cover-letter commit, then the patches."""
    version = version or Version.of(series.manifest)
    gitdir = _git_dir(repo)
    _user(repo)
    branch = f"b4/{slug(series.manifest.name)}"
    ref = f"refs/heads/{branch}"

    def git(*args: str, **kw: object) -> proc.Result:
        return proc.run(["git", "--git-dir", gitdir, *args], **kw)  # type: ignore[arg-type]

    old = git("rev-parse", "--verify", "--quiet", ref, check=False).stdout.strip()
    if old and not force:
        raise KseriesError(f"branch {branch} already exists in {repo}",
                           hint="delete it, or --force to replace it (its reflog keeps the old)")
    worktrees = git("worktree", "list", "--porcelain", check=False).stdout
    if f"branch {ref}\n" in worktrees + "\n":
        raise KseriesError(f"branch {branch} is checked out in a working tree of {repo}",
                           hint="switch that tree to another branch first")
    git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(series.repo), series.ref,
        what="git fetch of the series")
    base_tree = git("rev-parse", f"{series.base.commit}^{{tree}}").stdout.strip()
    cover = git("commit-tree", base_tree, "-p", series.base.commit,
                input=cover_message(series, recipients, version)).stdout.strip()
    parent = cover
    for commit in series.commits:
        fmt = git("log", "-1", "--format=%T%x00%an%x00%ae%x00%ad", "--date=raw", commit)
        tree, name, email, date = fmt.stdout.strip("\n").split("\0")
        message = git("log", "-1", "--format=%B", commit).stdout
        parent = git("commit-tree", tree, "-p", parent, input=message, env={
            "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date,
        }).stdout.strip()
    git("update-ref", "-m", "kseries submit --b4", ref, parent, old or "0" * 40)
    git("config", f"branch.{branch}.b4-prep-cover-strategy", "commit")
    return Prepared(repo, branch, cover, parent, change_id(series), show_info(repo, branch))


def b4_command() -> str:
    """b4 from PATH, or the one installed next to this Python (kseries depends on b4)."""
    found = shutil.which("b4")
    if found:
        return found
    sibling = Path(sys.executable).parent / "b4"
    if sibling.exists():
        return str(sibling)
    raise KseriesError("b4: command not found", hint="pip install b4 (kseries depends on it)")


def show_info(repo: Path, branch: str) -> dict[str, str]:
    """``b4 --offline-mode prep --show-info BRANCH``, as a dict."""
    res = proc.run([b4_command(), "--offline-mode", "prep", "--show-info", branch], cwd=repo,
                   check=False, timeout=120)
    if not res.ok:
        raise KseriesError(
            f"b4 does not read branch {branch} in {repo} (exit {res.returncode})",
            hint=" | ".join(proc.key_lines(res.stderr + res.stdout)[:3]),
        )
    info = {}
    for line in res.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            info[key.strip()] = value.strip()
    return info
