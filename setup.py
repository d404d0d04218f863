"""The series data goes into the wheel: templates/ and kselftest/ as kseries/data/.

Both folders stay at the top of the project, where users edit them. A wheel
(``pip install .``, ``pipx install .``) carries a copy inside the package,
which kseries.cli.paths finds; an editable install reads them in place.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SERIES_DATA = ("templates", "kselftest")


class BuildPyWithSeriesData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "kseries" / "data"
        for name in SERIES_DATA:
            shutil.rmtree(dest / name, ignore_errors=True)
            shutil.copytree(ROOT / name, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithSeriesData})
