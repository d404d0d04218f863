"""Where the last `kseries check` verdict for a series lives, and reading it.

`check` writes its JSON report here; `submit` reads it to refuse sending a
series whose last check is missing or failed. Keyed by base and series tip,
so any change to the series (a new tip) needs a new check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kseries.base.bases import Base
from kseries.base.cache import cache_root, write_atomic

PASS, FINDINGS, ERROR = "pass", "findings", "error"


def report_path(base: Base, tip: str) -> Path:
    return cache_root() / "reports" / base.key / f"{tip}.json"


def save(base: Base, tip: str, report: dict[str, Any]) -> Path:
    path = report_path(base, tip)
    write_atomic(path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return path


def load(base: Base, tip: str) -> dict[str, Any] | None:
    """The saved report of the last check of this series, or None if never checked."""
    try:
        data = json.loads(report_path(base, tip).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def status(base: Base, tip: str) -> str | None:
    """PASS / FINDINGS / ERROR of the last check of this series, or None if never checked."""
    data = load(base, tip)
    if data is None:
        return None
    value = data.get("status")
    return value if value in (PASS, FINDINGS, ERROR) else ERROR
