"""The Debian import path on a small tarball: one commit, fixed identity, a lock."""

from __future__ import annotations

import io
import tarfile
import threading
from pathlib import Path

import pytest

from kseries.base import bases
from kseries.errors import KseriesError


def small_tarball(path: Path) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data, mode in [
            ("linux-source-6.99/Makefile", b"VERSION = 6\n", 0o644),
            ("linux-source-6.99/scripts/checkpatch.pl", b"#!/usr/bin/perl\n", 0o755),
            ("linux-source-6.99/.gitignore", b"/*\n!/debian/\n", 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1234
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("linux-source-6.99/link")
        link.type, link.linkname = tarfile.SYMTYPE, "Makefile"
        tar.addfile(link)
    return path


@pytest.fixture
def fake_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> list[int]:
    """Stand in for apt: the tarball is ours, everything after it is the real code."""
    tarball = small_tarball(tmp_path / "linux-source-6.99.tar.xz")
    imports: list[int] = []
    real = bases._import_tarball

    def counting(repo: Path, tb: Path, describe: str) -> str:
        imports.append(1)
        return real(repo, tb, describe)

    monkeypatch.setattr(bases, "_ensure_package", lambda pin, install: tarball)
    monkeypatch.setattr(bases, "_import_tarball", counting)
    return imports


PIN = bases.DebianPin("6.99", "linux-source-6.99", "6.99.1-1")


def test_import_is_one_commit_with_fixed_identity(fake_package: list[int]) -> None:
    b = bases.debian_base(PIN)
    log = bases.proc.run(["git", "--git-dir", b.repo, "log", "--format=%an <%ae> %at %s",
                          b.commit]).stdout.strip()
    assert log == ("kseries import <kseries@localhost> 946684800 "
                   "Debian linux-source-6.99 6.99.1-1")
    files = bases.proc.run(["git", "--git-dir", b.repo, "ls-tree", "-r", b.commit]).stdout
    assert "100755 blob" in files and "scripts/checkpatch.pl" in files
    assert "120000 blob" in files and "\tlink" in files
    assert ".gitignore" in files  # the Debian block stays: the base is the tarball as shipped
    again = bases.debian_base(PIN)
    assert again.commit == b.commit and len(fake_package) == 1


def test_same_commit_id_in_another_cache(fake_package: list[int], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first = bases.debian_base(PIN).commit
    monkeypatch.setenv("KSERIES_CACHE", str(tmp_path / "other-cache"))
    assert bases.debian_base(PIN).commit == first


def test_two_imports_at_once_import_once(fake_package: list[int]) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(bases.debian_base(PIN).commit)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and len(results) == 4
    assert len(fake_package) == 1


def test_missing_package_without_install_says_what_to_run(isolated_cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bases, "installed_version", lambda package: "")
    with pytest.raises(KseriesError, match=r"run: apt-get install linux-source-6.99=6.99.1-1"):
        bases.debian_base(PIN, install=False)
