"""Render the series for a base: probe, edit, commit, format-patch.

The commits are written into the base's scratch repository (never the user's),
under ``refs/kseries/<series>/<version>``; the patch files are produced from
them by ``git format-patch``, and the cover letter's shortlog and diffstat are
git's, computed from those commits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import git

from kseries import proc
from kseries.base import workspace
from kseries.base.bases import Base
from kseries.base.objects import ObjectWriter
from kseries.errors import KseriesError
from kseries.progress import NullReporter, Reporter
from kseries.render import backport
from kseries.render import cache as rendercache
from kseries.render.backport import Stable
from kseries.render.edits import apply
from kseries.render.manifest import Manifest, Patch, Person
from kseries.render.manifest import load as load_manifest
from kseries.render.probe import Facts, present_parts, probe
from kseries.render.templating import Templates

# git must not read the user's configuration: output depends on the inputs only.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "LC_ALL": "C",
    "TZ": "UTC",
}
OUTPUT_LIST = ".kseries-files"
# The cover letter's {{ testing }} as render writes it: render runs nothing, so it
# claims nothing. kseries submit replaces it with what the records show ran.
NOT_RUN = ("Testing done:\n"
           "None by kseries render, which runs nothing. kseries submit replaces this\n"
           "with what its records show: the builds and runs of this tip.")


@dataclass(frozen=True)
class RenderedSeries:
    base: Base
    manifest: Manifest
    facts: Facts
    repo: Path  # the scratch git dir holding the commits
    commits: tuple[str, ...]
    files: tuple[Path, ...]  # cover letter first, then one file per patch
    out_dir: Path
    ref: str
    sender: Person | None = None  # who sends it, when not the manifest's sender
    stable: Stable | None = None  # a backport: to which tree, by whom

    @property
    def tip(self) -> str:
        return self.commits[-1]


@dataclass(frozen=True)
class PatchSummary:
    number: int
    subject: str
    files: tuple[str, ...]
    added: int
    removed: int


class TreeAtCommit:
    """A probe.TreeReader over a commit of a repository."""

    def __init__(self, writer: ObjectWriter, tree: bytes) -> None:
        self.writer = writer
        self.tree = tree
        self._cache: dict[str, str | None] = {}

    def read(self, path: str) -> str | None:
        if path not in self._cache:
            data = self.writer.read_blob(self.tree, path)
            text = None if data is None else data.decode("utf-8", errors="surrogateescape")
            self._cache[path] = text
        return self._cache[path]


def base_reader(base: Base) -> TreeAtCommit:
    """A reader of the base commit's files (for probing without rendering)."""
    repo = git.Repo(workspace.scratch_repo(base))
    writer = ObjectWriter(repo)
    return TreeAtCommit(writer, bytes(repo.commit(base.commit).tree.binsha))


def render(
    base: Base,
    series: Path,
    kselftest: Path,
    out_dir: Path,
    reporter: Reporter | None = None,
    *,
    version: int | None = None,
    rfc: bool | None = None,
    sender: Person | None = None,
    stable: str | None = None,
) -> RenderedSeries:
    """Render the series in directory ``series``; ``version`` and ``rfc`` override the
    manifest's (a reroll). ``sender``: the patch files are from them, with their
    Signed-off-by added where they do not sign last (the commits stay the series').
    ``stable``: the backport of the merged series to that tree (see backport.py)."""
    reporter = reporter or NullReporter()
    manifest = load_manifest(series)
    if version is not None or rfc is not None:
        manifest = dataclasses.replace(
            manifest, version=manifest.version if version is None else version,
            rfc=manifest.rfc if rfc is None else rfc)
    to: Stable | None = None
    if stable is not None:
        backport.check_request(manifest, stable)
        to = Stable(stable, sender or manifest.sender)
        manifest = backport.stable_manifest(manifest, to)
    tpl = Templates(series, kselftest)
    key = rendercache.inputs_key(base, series, kselftest, to.key if to else "")
    ref = f"refs/kseries/{manifest.name}/" + (f"stable-{to.tree}" if to else f"v{manifest.version}")
    # One render of a base at a time: its refs, cache record and default output are shared.
    with workspace.writing(base) as scratch:
        cached = rendercache.load(base, key, scratch)
        repo = git.Repo(scratch)
        try:
            if cached:
                commits, facts = cached
                reporter.start("render", f"unchanged inputs: reusing {commits[-1][:12]}")
            else:
                commits, facts = _render_commits(base, manifest, tpl, repo, reporter, to)
                rendercache.save(base, key, commits, facts)
            git.Reference.create(repo, ref, commits[-1], force=True, logmsg="kseries render")
        finally:
            repo.close()
        reporter.update("git format-patch")
        files = format_patches(scratch, base, manifest, tpl, facts, commits, out_dir,
                               sender=sender, stable=to)
    reporter.finish("DONE", f"{len(commits)} patches in {out_dir}")
    return RenderedSeries(base, manifest, facts, scratch, tuple(commits), files, out_dir, ref,
                          sender, to)


def _render_commits(
    base: Base, manifest: Manifest, tpl: Templates, repo: git.Repo, reporter: Reporter,
    stable: Stable | None = None,
) -> tuple[list[str], Facts]:
    writer = ObjectWriter(repo)
    base_tree = bytes(repo.commit(base.commit).tree.binsha)
    reporter.start("render", f"probing {base.describe}")
    reader = TreeAtCommit(writer, base_tree)
    # Before the probe: a base with part of the feature may lack what the probe
    # reads (the merged design removes pio.linear_rip), and that is not the news.
    present = present_parts(reader)
    if present:
        raise KseriesError(
            f"base {base.label} already contains the feature: " + "; ".join(present),
            hint="render against a base without it (it is upstream since 6.16)",
        )
    facts = probe(reader)
    return _commit_all(manifest, tpl, writer, base, base_tree, facts, reporter, reader,
                       stable), facts


def _commit_all(
    manifest: Manifest, tpl: Templates, writer: ObjectWriter, base: Base, base_tree: bytes,
    facts: Facts, reporter: Reporter, reader: TreeAtCommit | None = None,
    stable: Stable | None = None,
) -> list[str]:
    reader = TreeAtCommit(writer, base_tree) if reader is None else reader
    adapted = backport.notes(tpl, manifest, f=facts, base=base) if stable else {}
    current: dict[str, str | None] = {}
    parent, tree = base.commit, base_tree
    commits = []
    for patch in manifest.patches:
        reporter.update(f"patch {patch.number}/{len(manifest.patches)}: {patch.subject}")
        changed: dict[str, str] = {}
        for change in patch.changes:
            for edit in tpl.edits(change, f=facts, base=base):
                before = changed.get(edit.file, current.get(edit.file, reader.read(edit.file)))
                if edit.file not in current:
                    current[edit.file] = reader.read(edit.file)
                changed[edit.file] = apply(before, edit)
        current.update(changed)
        tree = writer.write_tree(tree, {p: t.encode("utf-8", "surrogateescape")
                                        for p, t in changed.items()})
        if stable:
            body = tpl.message(patch.message, f=facts, base=base, patch=patch)
            message = backport.message(patch, body, stable, adapted.get(patch.number, ()))
        else:
            message = commit_message(patch, tpl, facts, base)
        sender = manifest.sender.ident
        parent = writer.write_commit(tree, parent, patch.author.ident, sender, patch.date, message)
        commits.append(parent)
    return commits


def commit_message(patch: Patch, tpl: Templates, facts: Facts, base: Base) -> str:
    body = tpl.message(patch.message, f=facts, base=base, patch=patch)
    trailers = "\n".join(str(t) for t in patch.trailers)
    return f"{patch.subject}\n\n{body}\n\n{trailers}\n"


def format_patches(
    scratch: Path, base: Base, manifest: Manifest, tpl: Templates, facts: Facts,
    commits: list[str], out_dir: Path, *, sender: Person | None = None,
    stable: Stable | None = None,
) -> tuple[Path, ...]:
    """The patch files; from ``sender`` (who signs each patch where they do not sign last,
    as `git format-patch --signoff` does) when given, else from the manifest's sender."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_previous(out_dir)
    stamp = manifest.patches[-1].date.astimezone(UTC)
    signoff = sender is not None
    sender = sender or manifest.sender
    env = dict(GIT_ENV)
    env.update({
        "GIT_COMMITTER_NAME": sender.name, "GIT_COMMITTER_EMAIL": sender.email,
        "GIT_COMMITTER_DATE": f"{int(stamp.timestamp())} +0000",
    })
    prefix = ("RFC " if manifest.rfc else "") + manifest.subject_prefix
    argv = [
        "git", "-c", "core.abbrev=12", "-c", "format.coverFromDescription=subject",
        "--git-dir", str(scratch), "format-patch", "--quiet", "--cover-letter",
        "--no-signature", "--no-numbered-files", "--diff-algorithm=myers", "--no-color",
        f"--subject-prefix={prefix}", f"--base={base.commit}", "-o", str(out_dir),
        *(["--signoff"] if signoff else []),
    ]
    if manifest.version > 1:
        argv.append(f"-v{manifest.version}")
    argv.append(f"{base.commit}..{commits[-1]}")
    res = proc.run(argv, env=env, what="git format-patch")
    files = tuple(Path(line) for line in res.stdout.splitlines() if line.strip())
    if not files:
        files = tuple(sorted(out_dir.glob("*.patch")))
    extra = {}
    if stable:
        extra["backport"] = {"tree": stable.tree, "sender": stable.sender,
                             "notes": backport.notes(tpl, manifest, f=facts, base=base)}
    _fill_cover(files[0], manifest, tpl, facts, base, **extra)
    (out_dir / OUTPUT_LIST).write_text("".join(f"{p.name}\n" for p in files))
    return files


def _remove_previous(out_dir: Path) -> None:
    """Remove the files of a previous render into ``out_dir``, and only those."""
    listing = out_dir / OUTPUT_LIST
    if not listing.exists():
        return
    for name in listing.read_text().split():
        if "/" not in name:
            (out_dir / name).unlink(missing_ok=True)
    listing.unlink()


def _fill_cover(path: Path, manifest: Manifest, tpl: Templates, facts: Facts, base: Base,
                **extra: Any) -> None:
    text = path.read_text()
    blurb = tpl.render(manifest.cover, f=facts, base=base, series=manifest,
                       testing=NOT_RUN, **extra).strip("\n")
    if "*** SUBJECT HERE ***" not in text or "*** BLURB HERE ***" not in text:
        raise KseriesError(f"{path}: git format-patch wrote no cover letter placeholders")
    text = text.replace("*** SUBJECT HERE ***", manifest.cover_subject, 1)
    text = text.replace("*** BLURB HERE ***", blurb, 1)
    path.write_text(text)


def summarize(series: RenderedSeries) -> list[PatchSummary]:
    """Files and +/- per patch, from git's numstat."""
    out = []
    parent = series.base.commit
    for number, (patch, commit) in enumerate(
        zip(series.manifest.patches, series.commits, strict=True), start=1
    ):
        res = workspace.git(series.repo, "diff", "--numstat", parent, commit)
        files, added, removed = [], 0, 0
        for line in res.stdout.splitlines():
            a, r, name = line.split("\t", 2)
            files.append(name)
            added += int(a) if a.isdigit() else 0
            removed += int(r) if r.isdigit() else 0
        out.append(PatchSummary(number, patch.subject, tuple(files), added, removed))
        parent = commit
    return out


