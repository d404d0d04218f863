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


def default_out(base: Base) -> Path:
    return cache_root() / "series" / base.key
