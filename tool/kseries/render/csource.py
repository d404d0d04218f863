"""Just enough C reading for the probes: blocks, enums, defines, struct layouts.

These read kernel headers as text. They are not a C parser: each function
handles the shapes that kernel headers use for the construct it reads, and
raises ``ParseError`` naming what it could not read instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BRACES = re.compile(r"[{}]")


class ParseError(Exception):
    pass


def block(text: str, start: str) -> tuple[int, int]:
    """Offsets of the brace block whose opening line matches regex ``start``.

    Returns (offset of the start line, offset just past the closing brace).
    """
    m = re.search(start, text, re.MULTILINE)
    if not m:
        raise ParseError(f"no line matching {start!r}")
    return block_at(text, m.start())


def block_at(text: str, pos: int) -> tuple[int, int]:
    """Like ``block`` for the construct starting at offset ``pos``."""
    line_start = text.rfind("\n", 0, pos) + 1
    brace = text.find("{", pos)
    if brace < 0:
        raise ParseError(f"no '{{' after offset {pos}")
    depth = 0
    for m in _BRACES.finditer(text, brace):
        if m.group(0) == "{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return line_start, m.end()
    raise ParseError(f"unbalanced braces after offset {pos}")


_FUNCTION = re.compile(r"^[A-Za-z_][^\n;{}()]*?\b(\w+)\([^;{}]*\)\s*\{", re.M)


def enclosing_function(text: str, pos: int) -> str | None:
    """The name of the function whose body holds offset ``pos`` (a definition at column 0)."""
    heads = [m for m in _FUNCTION.finditer(text, 0, pos) if m.start() < pos]
    for m in reversed(heads):
        try:
            start, end = block_at(text, m.start())
        except ParseError:
            return None
        if start <= pos < end:
            return m.group(1)
    return None


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group(0)), text, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", text)


@dataclass(frozen=True)
class EnumEntry:
    name: str
    value: int
    explicit: bool  # written with "= value"


def enum_entries(body: str, constants: dict[str, int] | None = None) -> list[EnumEntry]:
    """The entries of an enum body (the text between its braces), with values."""
    entries: list[EnumEntry] = []
    nxt = 0
    for item in strip_comments(body).split(","):
        item = item.strip()
        if not item:
            continue
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:=\s*(.+))?", item, re.DOTALL)
        if not m:
            raise ParseError(f"cannot read enum entry {item!r}")
        name, expr = m.group(1), m.group(2)
        if expr is not None:
            known = dict(constants or {})
            known.update({e.name: e.value for e in entries})
            nxt = evaluate(expr, known)
        entries.append(EnumEntry(name, nxt, expr is not None))
        nxt += 1
    return entries


def evaluate(expr: str, names: dict[str, int]) -> int:
    """Evaluate a small integer C expression (numbers, names, + - * << | parens)."""
    expr = strip_comments(expr).strip()
    expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr)

    def name(m: re.Match[str]) -> str:
        if m.group(0) not in names:
            raise ParseError(f"unknown name {m.group(0)!r} in {expr!r}")
        return str(names[m.group(0)])

    py = re.sub(r"\b[A-Za-z_]\w*\b", name, expr)
    if not re.fullmatch(r"[\s0-9xXa-fA-F+\-*()<>|&]*", py):
        raise ParseError(f"cannot evaluate {expr!r}")
    try:
        value = eval(py, {"__builtins__": {}}, {})  # only digits and operators remain
    except (SyntaxError, TypeError, ZeroDivisionError) as exc:
        raise ParseError(f"cannot evaluate {expr!r}") from exc
    if not isinstance(value, int):
        raise ParseError(f"{expr!r} is not an integer")
    return value


@dataclass(frozen=True)
class Define:
    name: str
    value: str  # the replacement text, comment stripped
    comment: str  # the trailing /* comment */ text, if any
    line: str  # the whole line as written


def defines(text: str, prefix: str = "") -> list[Define]:
    """``#define NAME VALUE /* comment */`` lines whose name starts with ``prefix``."""
    out = []
    pat = re.compile(
        r"^#\s*define\s+(" + re.escape(prefix) + r"\w*)[ \t]+([^\n]*?)[ \t]*"
        r"(?:/\*\s*(.*?)\s*\*/)?[ \t]*$",
        re.MULTILINE,
    )
    for m in pat.finditer(text):
        out.append(Define(m.group(1), m.group(2).strip(), m.group(3) or "", m.group(0)))
    return out


TYPE_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "__u8": 1, "__u16": 2, "__u32": 4,
              "__u64": 8}


@dataclass(frozen=True)
class Field:
    type: str
    name: str
    count: int | None  # array length; None for a scalar
    offset: int
    size: int
    line: str  # the source line as written


def packed_fields(body: str, constants: dict[str, int]) -> list[Field]:
    """Offsets of the leading fixed-size fields of a packed struct body.

    Stops at the first member it cannot size (a nested union or struct), which
    for the VMCB control area is the software-reserved area at its end.
    """
    fields: list[Field] = []
    offset = 0
    for raw in body.splitlines():
        code = strip_comments(raw).strip()
        if not code or code in ("{", "};"):
            continue
        m = re.fullmatch(r"(\w+)\s+(\w+)\s*(?:\[([^\]]+)\])?\s*;", code)
        if not m or m.group(1) not in TYPE_SIZES:
            break
        count = evaluate(m.group(3), constants) if m.group(3) else None
        size = TYPE_SIZES[m.group(1)] * (count if count is not None else 1)
        fields.append(Field(m.group(1), m.group(2), count, offset, size, raw))
        offset += size
    return fields
