"""The Makefile's Debian packages exist on both releases it supports, 12 and 13.

Read from Debian's own package lists for bookworm and trixie (kseries' private
apt configuration in the cache, the lists fetched once), so a package renamed
or dropped in one release fails here, and not on a newcomer's machine. On 13
the LAVA packages come from bookworm at a pinned version: that version must be
there.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import ROOT
from kseries.base import archive
from kseries.errors import KseriesError

RELEASES = ("bookworm", "trixie")


def apt_list(codename: str) -> dict[str, list[str]]:
    """``make apt-list`` for ``codename``: {"run": [...], "test": [...], "lava": [...]}."""
    res = subprocess.run(["make", "-s", "--no-print-directory", "apt-list",
                          f"CODENAME={codename}"], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    kinds = {}
    for line in res.stdout.splitlines():
        kind, _, names = line.partition(":")
        kinds[kind] = names.split()
    return kinds


def lists(codename: str) -> archive.Archive:
    if shutil.which("apt-get") is None:
        pytest.skip("needs Debian's apt-get to read the archive's package lists")
    a = archive.archive(codename, (codename,))
    try:
        archive.prepare(a)
    except KseriesError as exc:
        pytest.skip(f"Debian's archive is out of reach from here: {exc}")
    return a


@pytest.mark.parametrize("codename", RELEASES)
def test_every_package_make_installs_exists_in_the_release(codename: str) -> None:
    kinds = apt_list(codename)
    assert kinds["run"] and kinds["test"], kinds
    a = lists(codename)
    missing = [p for p in kinds["run"] + kinds["test"] if not archive.binary_versions(a, p)]
    assert not missing, f"not in {codename}: {missing}"


def test_trixie_gets_lava_from_bookworm_at_a_version_bookworm_has() -> None:
    assert apt_list("bookworm")["lava"] == []  # 12 installs its own, by name
    assert "lava-dispatcher" in apt_list("bookworm")["test"]
    kinds = apt_list("trixie")
    assert not any(p.startswith("lava") for p in kinds["run"] + kinds["test"])
    suite, *wanted = kinds["lava"]
    assert suite == "bookworm" and {w.split("=")[0] for w in wanted} >= {
        "lava-common", "lava-dispatcher"}
    trixie = lists("trixie")
    assert not archive.binary_versions(trixie, "lava-dispatcher")  # the reason for all this
    a = lists(suite)
    for want in wanted:
        package, _, version = want.partition("=")
        assert version in archive.binary_versions(a, package), want
