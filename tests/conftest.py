"""Shared fixtures: project paths, synthetic trees, the real Debian bases."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kseries.base import bases
from synthetic import make_tree

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
KSELFTEST = ROOT / "kselftest"
V2 = TEMPLATES / "series" / "v2"  # the series directories kseries ships
MERGED = TEMPLATES / "series" / "merged"


@pytest.fixture
def templates() -> Path:
    return TEMPLATES


@pytest.fixture
def v2() -> Path:
    return V2


@pytest.fixture
def merged() -> Path:
    return MERGED


@pytest.fixture
def kselftest() -> Path:
    return KSELFTEST


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private kseries cache, for tests that must not share the real one."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KSERIES_CACHE", str(cache))
    return cache


@pytest.fixture
def synthetic(tmp_path: Path, isolated_cache: Path) -> Path:
    return make_tree(tmp_path / "linux")


def debian(series: str) -> bases.Base:
    """A real Debian base from the shared cache (fetched and imported on first use, ~1 min)."""
    if shutil.which("apt-get") is None:
        pytest.skip("needs Debian's apt-get to fetch linux-source; run on Debian 12 or 13")
    return bases.resolve(f"debian:{series}", TEMPLATES)


@pytest.fixture(scope="session")
def debian_612() -> bases.Base:
    return debian("6.12")


@pytest.fixture(scope="session")
def debian_61() -> bases.Base:
    return debian("6.1")


@pytest.fixture
def no_user_git_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[user]\n\tname = Test\n\temail = test@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    yield cfg


LAST = ("test_emulator.py",)  # make test builds the emulator beside the tests before these


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the emulated host's tests last: their emulator builds beside the others."""
    items.sort(key=lambda item: item.path.name in LAST)
