"""What Debian 12's own Python (3.11.2) lacks, and kseries must do without.

The machine here runs a newer 3.11 from pyenv; a newcomer's `make venv` on
Debian 12 uses /usr/bin/python3, 3.11.2, whose tarfile has no ``filter=``
(added in 3.11.4). Each test takes the newer feature away and runs the code.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kseries.base import maintainers
from kseries.errors import KseriesError


def git_archive_like(path: Path, *, with_link: bool = False) -> Path:
    with tarfile.open(path, "w") as tar:
        d = tarfile.TarInfo("scripts")
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for name, data in [("scripts/get_maintainer.pl", b"#!/usr/bin/perl\n"),
                           ("MAINTAINERS", b"KVM\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if with_link:
            link = tarfile.TarInfo("evil")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
    return path


@pytest.mark.parametrize("old", [True, False], ids=["python-3.11.2", "python-now"])
@pytest.mark.filterwarnings("ignore:Python 3.14 will:DeprecationWarning")  # 3.12+ posing as 3.11.2
def test_get_maintainer_unpacks_without_tarfile_filters(tmp_path: Path, old: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if old:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    tree = tmp_path / "tree"
    with tarfile.open(git_archive_like(tmp_path / "m.tar")) as tar:
        maintainers._extract(tar, tree)
    assert (tree / "scripts/get_maintainer.pl").read_bytes() == b"#!/usr/bin/perl\n"
    assert (tree / "MAINTAINERS").is_file()


def test_anything_but_files_and_directories_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    with tarfile.open(git_archive_like(tmp_path / "m.tar", with_link=True)) as tar, \
            pytest.raises(KseriesError, match="unexpected entry: evil"):
        maintainers._extract(tar, tmp_path / "tree")
    assert not (tmp_path / "tree" / "evil").exists()
