"""The package's shape: one sub-package per pipeline stage, imports running one way.

Read from the source with ``ast`` (nothing is imported), so a violation is
found whether or not the offending import ever runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tool" / "kseries"

# The shared core below every stage: it imports nothing of the stages.
CORE = ("errors", "proc", "progress")
# The stages, lowest first: a module may import from its own stage, from the
# stages before it, and from the core. The order follows the pipeline
# (base -> probe -> render -> apply -> check -> build -> run -> submit) except
# that build comes before check: the build checks call build, and build knows
# nothing of checks.
STAGES = ("base", "render", "build", "check", "run", "submit")
# The command line sits on top of everything.
TOP = "cli"
# Top-level modules of the package that belong to no stage.
ENTRY = ("__init__", "__main__")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The kseries modules ``path`` imports (``from kseries.x import y`` names x.y if
    that is a module, else x)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kseries"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "kseries":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def layer(module: str) -> tuple[int, str]:
    """(rank, group) of a module: the core is 0, the stages 1.., the CLI last."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0, "kseries"  # the package itself: its version
    group = parts[1]
    if group in CORE:
        return 0, group
    if group in STAGES:
        return 1 + STAGES.index(group), group
    if group == TOP:
        return 1 + len(STAGES), group
    return -1, group


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def test_every_module_belongs_to_a_stage_or_the_core() -> None:
    mods = modules()
    assert len(mods) > 40, "the package was not found where the test looks"
    stray = [m for m in mods if layer(m)[0] < 0 and m.split(".")[-1] not in ENTRY]
    assert not stray, f"modules outside the stages and the core: {stray}"
    for stage in (*STAGES, TOP):
        init = PACKAGE / stage / "__init__.py"
        assert init.is_file(), f"{stage}/ has no __init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 15, f"{stage}/__init__.py: say what the stage does"


def test_imports_run_down_the_pipeline() -> None:
    wrong = []
    for module, deps in graph().items():
        rank, group = layer(module)
        if module.split(".")[-1] in ENTRY and rank <= 0 and module != "kseries":
            continue  # kseries.__main__ starts the CLI
        for dep in deps:
            dep_rank, dep_group = layer(dep)
            if dep_group == TOP and group != TOP:
                wrong.append(f"{module} imports the CLI ({dep})")
            elif dep_rank > rank:
                wrong.append(f"{module} ({group}) imports {dep} ({dep_group}), a later stage")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_two_modules_import_each_other() -> None:
    edges = graph()
    cycles = []
    # A module reaches itself again only through a cycle: depth-first from each.
    for start in sorted(edges):
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for dep in edges.get(node, ()):
                if dep == start:
                    cycles.append(" -> ".join((*path, dep)))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, (*path, dep)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rules above can fail: a render module that imports check is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from kseries.check.report import Cell\nfrom kseries.base import bases\n")
    deps = imports_of(bad, set(modules()))
    assert deps == {"kseries.check.report", "kseries.base.bases"}
    rank = layer("kseries.render.series")[0]
    assert [d for d in deps if layer(d)[0] > rank] == ["kseries.check.report"]
