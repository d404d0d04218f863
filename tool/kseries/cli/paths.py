"""Where the project's data lives, for the CLI's defaults."""

from __future__ import annotations

import os
from pathlib import Path

from kseries.base.bases import Base
from kseries.base.cache import cache_root

ROOT = Path(os.environ.get("KSERIES_ROOT", Path(__file__).resolve().parents[3]))
TEMPLATES = ROOT / "templates"
KSELFTEST = ROOT / "kselftest"
PATCHES = ROOT / "patches"


def default_out(base: Base) -> Path:
    return cache_root() / "series" / base.key
