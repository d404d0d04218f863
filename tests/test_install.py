"""kseries installed from its wheel, away from the checkout, still finds its series.

The wheel is built from a copy of the project's files (what an sdist holds),
with the test venv's own setuptools and no build isolation, so no network is
needed. It is installed without dependencies into a fresh venv that has no
pip and no kseries; that venv borrows the test venv's site-packages for
GitPython, jinja2 and the rest through a path line. Such a line is not a site
directory, so the editable install of the checkout that sits there is not
seen: the kseries that runs is the wheel's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT
from kseries.base.bases import Base

SDIST_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "tool", "templates",
               "kselftest")


def run(argv: list[str], cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert res.returncode == 0, f"{argv[:4]} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding kseries from its wheel; returns its bin/ directory."""
    if not (ROOT / "setup.py").exists():
        pytest.skip("not a kseries checkout: no setup.py beside tests/")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in SDIST_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp / "dist"), str(src)])
    wheels = list((tmp / "dist").glob("kseries-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheels[0])])
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
                    ).stdout.strip())
    (site / "kseries-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KSERIES_ROOT", "PYTHONPATH")}
    env["CI"] = "true"
    return env


def test_the_wheel_carries_the_series_data(installed: Path, tmp_path: Path) -> None:
    code = ("import kseries, kseries.cli.paths as p; "
            "print(kseries.__file__); print(p.TEMPLATES); print(p.KSELFTEST)")
    res = run([str(installed / "python"), "-c", code], cwd=tmp_path, env=clean_env())
    module, templates, kselftest = res.stdout.split()
    venv = installed.parent
    assert Path(module).is_relative_to(venv), f"kseries came from {module}, not the wheel"
    assert Path(templates).is_relative_to(venv) and Path(kselftest).is_relative_to(venv)
    for rel in ("templates/series/v2/series.toml", "templates/series/merged/series.toml",
                "templates/bases.toml", "templates/profiles/vm.toml",
                "kselftest/hosts.toml", "kselftest/guest/init"):
        shipped = Path(templates).parent / rel
        assert shipped.read_bytes() == (ROOT / rel).read_bytes(), rel


@pytest.mark.slow
def test_installed_kseries_renders_v2_outside_the_checkout(
    installed: Path, debian_612: Base, tmp_path: Path
) -> None:
    """`kseries render` from the wheel, run in a directory away from the checkout,
    gives the golden v2 patches byte for byte."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    res = subprocess.run([str(installed / "kseries"), "render", "--base", "debian:6.12",
                          "-o", "out"], cwd=work, env=clean_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    golden = ROOT / "patches" / "v2" / "debian-6.12"
    want = sorted(p.name for p in golden.glob("*.patch"))
    got = sorted(p.name for p in (work / "out").glob("*.patch"))
    assert got == want and len(got) == 6
    for name in want:
        assert (work / "out" / name).read_bytes() == (golden / name).read_bytes(), name
