"""Jinja2 over a series directory: change files become edits, messages become text.

Templates are looked up in the series directory, then in ``common/`` beside
it (the partials the shipped series share), then in kselftest/ (so a change
can include a selftest source that is itself a template).

StrictUndefined everywhere, so a fact the base did not provide fails loudly.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import jinja2

from kseries.base.cache import cache_root
from kseries.errors import KseriesError
from kseries.render.edits import Edit

WRAP = 75


def tabs_after(name: object, prefix: int, column: int) -> str:
    """Tabs that move text after ``prefix`` + ``name`` to ``column`` (at least one)."""
    pos = prefix + len(_defined(name))
    tabs = ""
    while not tabs or pos < column:
        pos = (pos // 8 + 1) * 8
        tabs += "\t"
    return tabs


def _defined(value: object) -> str:
    """Filters get Undefined as a value; make it fail as StrictUndefined should."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises UndefinedError naming the missing fact
    return str(value)


def re_escape(value: object) -> str:
    return re.escape(_defined(value))


def search_path(series: Path, kselftest: Path) -> list[Path]:
    """Where a series' templates are looked up, in order."""
    common = series.parent / "common"
    return [series, *([common] if common.is_dir() else []), kselftest]


def _bytecode_cache() -> jinja2.BytecodeCache:
    """Compiled templates, kept in the cache (checked against each template's source)."""
    directory = cache_root() / "jinja"
    directory.mkdir(parents=True, exist_ok=True)
    return jinja2.FileSystemBytecodeCache(str(directory))


class Templates:
    def __init__(self, root: Path, kselftest: Path) -> None:
        self.root = root
        self.kselftest_dir = kselftest
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in search_path(root, kselftest)]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            autoescape=False,
            bytecode_cache=_bytecode_cache(),
        )
        self.env.filters["re_escape"] = re_escape
        self.env.filters["tabs_after"] = tabs_after
        self.env.filters["wrap"] = wrap
        self.env.filters["bullet"] = bullet
        self.env.globals["kselftest"] = self.kselftest

    def kselftest(self, name: str) -> str:
        path = self.kselftest_dir / name
        try:
            return path.read_text()
        except OSError as exc:
            raise KseriesError(f"{path}: cannot read ({exc.strerror})") from exc

    def render(self, name: str, **context: Any) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as exc:
            where = ", ".join(str(d) for d in search_path(self.root, self.kselftest_dir))
            missing = exc.name if isinstance(exc.name, str) else name
            raise KseriesError(
                f"{self.root}/{name}: template {missing!r} not found (looked in {where})",
                hint="a series directory of your own keeps the shipped common/ beside it: "
                     "copy templates/series/ whole") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise KseriesError(
                f"{self.root}/{exc.name or name}:{exc.lineno}: template syntax error: "
                f"{exc.message}") from exc
        except jinja2.UndefinedError as exc:
            raise KseriesError(
                f"{self.root}/{name}: {exc.message}",
                hint="the template uses a fact the probe lacks") from exc

    def edits(self, change: str, **context: Any) -> list[Edit]:
        name = f"changes/{change}.toml.j2"
        text = self.render(name, **context)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise KseriesError(f"{self.root}/{name}: rendered to invalid TOML ({exc})") from exc
        out = []
        for i, e in enumerate(data.get("edit", []), start=1):
            try:
                out.append(Edit(**e))
            except TypeError as exc:
                raise KseriesError(f"{self.root}/{name}: edit {i}: {exc}") from exc
        if not out:
            raise KseriesError(f"{self.root}/{name}: no [[edit]] entries")
        return out

    def message(self, name: str, **context: Any) -> str:
        text = self.render(f"messages/{name}", **context).strip("\n")
        long = [ln for ln in text.splitlines() if len(ln) > WRAP and " " in ln.strip()]
        if long:
            raise KseriesError(
                f"{self.root}/messages/{name}: line longer than {WRAP} columns: {long[0][:40]}...",
                hint="wrap the commit message at 75 columns",
            )
        return text


def wrap(text: object, width: int = WRAP) -> str:
    """Fill each line of ``text`` to ``width`` columns; words (URLs) are never split."""
    return "\n".join(textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False)
                     if p else "" for p in _defined(text).split("\n"))


def bullet(text: object, width: int = WRAP) -> str:
    """``text`` as a list item: "- " and lines filled to ``width``, indented under it."""
    return textwrap.fill(_defined(text), width, initial_indent="- ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)
