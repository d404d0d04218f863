"""`kseries pipeline`: the build runs beside the check and reports at its own stage.

On the synthetic tree (tests/fault_fixtures.py), whose Makefile stands in for the
kernel's: the check's kvm targets build; the vm profile's `make tinyconfig` works
and its `make bzImage` has no rule, so the background build fails, as a real one
can, while the check goes on.
"""

from __future__ import annotations

from pathlib import Path

from fault_fixtures import fault_tree, kseries


def test_the_background_build_reports_at_the_build_stage(tmp_path: Path) -> None:
    tree = fault_tree(tmp_path / "linux", vm=True)
    out_dir = tmp_path / "out"
    res = kseries(["pipeline", "--base", str(tree), "-o", str(out_dir)], tmp_path / "cache")
    out = res.stdout
    assert "Traceback" not in out + res.stderr
    started = out.index("[build] started in the background")
    assert started < out.index("=== check ===") < out.index("=== build ===")
    build = out[out.index("=== build ==="):out.index("summary:")]
    # the child's own output, shown at its stage: what failed and where its log is
    assert "kseries: error: make bzImage" in build, build
    assert "$ " not in build.splitlines()[1:2]  # proc's argv lines are not shown
    rows = {ln.split()[0]: ln.split()[1] for ln in out[out.index("summary:"):].splitlines()[1:6]}
    assert rows["render"] == "PASS" and rows["build"] == "ERROR", rows
    assert rows["run"] == rows["submit"] == "not"  # "not run": build failed
    assert res.returncode not in (0, 2), res.returncode
    assert "kseries: error: make bzImage" in (out_dir / "build.log").read_text()
