"""Where the series data lives, for the CLI's defaults.

The data is the top-level ``templates/`` and ``kselftest/`` of the project. An
installed wheel carries a copy of both inside the package (``kseries/data/``,
put there by setup.py's build step); an editable install or a checkout reads
them where they are. ``$KSERIES_ROOT`` names another folder holding both.
"""

from __future__ import annotations

import os
from pathlib import Path

from kseries.base.bases import Base
from kseries.base.cache import cache_root
from kseries.errors import KseriesError

PACKAGE = Path(__file__).resolve().parents[1]
PACKAGED = PACKAGE / "data"  # in a wheel
CHECKOUT = PACKAGE.parents[1]  # tool/kseries -> the project's root


def data_root() -> Path:
    if os.environ.get("KSERIES_ROOT"):
        return Path(os.environ["KSERIES_ROOT"])
    if (PACKAGED / "templates").is_dir():
        return PACKAGED
    return CHECKOUT


ROOT = data_root()
TEMPLATES = ROOT / "templates"
KSELFTEST = ROOT / "kselftest"
SERIES = TEMPLATES / "series"
DEFAULT_SERIES = "v2"


def known_series() -> list[str]:
    return sorted(p.name for p in SERIES.iterdir() if (p / "series.toml").is_file())


def series_dir(spec: str) -> Path:
    """``--series``: the name of a series kseries ships, or the path of a series directory."""
    if "/" not in spec and spec not in (".", ".."):
        path = SERIES / spec
        if (path / "series.toml").is_file():
            return path
        if not Path(spec).is_dir():
            raise KseriesError(f"--series {spec}: no such series",
                               hint=f"choose {' or '.join(known_series())}, "
                                    "or give the path of a series directory")
    path = Path(spec).expanduser()
    if not (path / "series.toml").is_file():
        what = "does not exist" if not path.exists() else "has no series.toml"
        raise KseriesError(f"--series {spec}: {path} {what}",
                           hint="a series directory holds series.toml, its cover letter "
                                "template, changes/ and messages/ (see templates/series/v2)")
    return path


def default_out(base: Base, series: str = DEFAULT_SERIES) -> Path:
    """Where a series is rendered when no -o is given: per base and series."""
    return cache_root() / "series" / base.key / series
