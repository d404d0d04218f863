"""Fixtures and helpers for the check tests: the real rendered series, copies of
it to break on purpose, a series kseries did not make, and running checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from kseries.base import bases
from kseries.check import checklist
from kseries.check.report import Cell, Report
from kseries.render import series as render

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
KSELFTEST = ROOT / "kselftest"
PLACEHOLDER_TEST = """\
// SPDX-License-Identifier: GPL-2.0-only
/* A placeholder for kvm_buslock_test.c while kselftest/ does not have it. */
#include "test_util.h"

int main(void)
{
	return 0;
}
"""


def debian(series: str) -> bases.Base:
    if shutil.which("dpkg-query") is None:
        pytest.skip("needs Debian's dpkg to install linux-source; run on Debian 12")
    return bases.resolve(f"debian:{series}", TEMPLATES)


def kselftest_dir(tmp: Path) -> Path:
    """kselftest/, or a copy with a placeholder test while the real one is being written."""
    if (KSELFTEST / "kvm_buslock_test.c.j2").exists():
        return KSELFTEST
    copy = tmp / "kselftest"
    shutil.copytree(KSELFTEST, copy)
    (copy / "kvm_buslock_test.c").write_text(PLACEHOLDER_TEST)
    return copy


def rendered(base: bases.Base, tmp: Path, series: str = "v2") -> render.RenderedSeries:
    return render.render(base, TEMPLATES / "series" / series, kselftest_dir(tmp),
                         tmp / "rendered")


def series_of(patches: Path) -> str:
    """The shipped series whose subjects a directory of patches (or an mbox) carries."""
    text = (patches.read_text() if patches.is_file()
            else "".join(p.read_text() for p in sorted(patches.glob("*.patch"))))
    return "merged" if "Subject: [PATCH v5" in text else "v2"


def copy_series(series: render.RenderedSeries, dest: Path) -> Path:
    """The rendered patch files in a directory of their own, to edit."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in series.files:
        shutil.copy(f, dest / f.name)
    return dest


def patch_file(directory: Path, number: int) -> Path:
    """The file of patch ``number`` (0 = the cover letter) in a format-patch directory."""
    found = sorted(directory.glob(f"*{number:04d}-*.patch"))
    assert len(found) == 1, f"no single patch {number} in {directory}: {found}"
    return found[0]


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` (which must be there) in a patch file."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count))


def add_headers(path: Path, headers: str) -> None:
    """Insert mail headers after the Subject header (and its folded lines)."""
    text = path.read_text()
    m = re.search(r"^Subject:.*\n(?:[ \t].*\n)*", text, re.M)
    assert m, path
    path.write_text(text[: m.end()] + headers.rstrip("\n") + "\n" + text[m.end():])


def check(
    base: bases.Base, series: Path | None, names: Sequence[str], tmp: Path,
    own: str = "v2",
) -> Report:
    """Check the patches in ``series``, or (None) the series ``own`` rendered for ``base``."""
    work = tmp / f"work-{len(list(tmp.glob('work-*')))}"
    name = series_of(series) if series is not None else own
    ctx = checklist.prepare(base, TEMPLATES, TEMPLATES / "series" / name, kselftest_dir(tmp),
                            series, work,
                            out_dir=tmp / "default-out")
    return checklist.run(ctx, names, default=series is None)


def cells(report: Report, check: str, status: str | None = None) -> list[Cell]:
    return [c for c in report.cells
            if c.check == check and (status is None or c.status == status)]


def git(repo: Path, *args: str, env: dict[str, str] | None = None,
        input: str | None = None) -> str:
    full = dict(os.environ, GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1",
                LC_ALL="C", TZ="UTC", **(env or {}))
    cp = subprocess.run(["git", "--git-dir", str(repo), *args], env=full, input=input,
                        capture_output=True, text=True, check=True)
    return cp.stdout


def foreign_series(base: bases.Base, tmp: Path, edits: Sequence[tuple[str, str, str, str]],
                   ) -> Path:
    """A series kseries did not make: commits on top of the base in a test repository,
    then ``git format-patch``. ``edits``: (subject, file, old text, new text) per commit."""
    repo = tmp / "foreign.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    (repo / "objects" / "info" / "alternates").write_text(
        str((base.repo / "objects").resolve()) + "\n")
    ident = {"GIT_AUTHOR_NAME": "Ada Tester", "GIT_AUTHOR_EMAIL": "ada@example.org",
             "GIT_COMMITTER_NAME": "Ada Tester", "GIT_COMMITTER_EMAIL": "ada@example.org",
             "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000"}
    parent = base.commit
    index = tmp / "foreign.index"
    for subject, path, old, new in edits:
        env = {"GIT_INDEX_FILE": str(index), **ident}
        git(repo, "read-tree", parent, env=env)
        text = git(repo, "show", f"{parent}:{path}")
        assert old in text, f"{old!r} not in {path}"
        blob = git(repo, "hash-object", "-w", "--stdin", input=text.replace(old, new, 1)).strip()
        git(repo, "update-index", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env).strip()
        message = f"{subject}\n\nA change made outside kseries.\n\n" \
                  f"Signed-off-by: Ada Tester <ada@example.org>\n"
        parent = git(repo, "commit-tree", tree, "-p", parent, input=message, env=env).strip()
    out = tmp / "foreign"
    git(repo, "format-patch", "-q", "-o", str(out), f"--base={base.commit}",
        *(["--cover-letter"] if len(edits) > 2 else []), f"{base.commit}..{parent}", env=ident)
    return out


def mbox_of(files: Sequence[Path], dest: Path) -> Path:
    """One mbox holding the mails, as a mailing-list archive or ``b4 am`` would."""
    dest.write_text("".join(f.read_text() + ("" if f.read_text().endswith("\n") else "\n")
                            for f in files))
    return dest
