"""Rendering end to end on synthetic trees: output, determinism, every error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import TEMPLATES
from kseries.base import bases
from kseries.cli import main
from kseries.errors import KseriesError
from kseries.render import apply as applying
from kseries.render import series as render
from synthetic import FILES, git, make_tree


def render_tree(tree: Path, series: Path, kselftest: Path, out: Path,
                ref: str = "") -> render.RenderedSeries:
    """Render the series in directory ``series`` for the tree at ``ref``."""
    b = bases.resolve(f"{tree}@{ref}" if ref else str(tree), TEMPLATES)
    return render.render(b, series, kselftest, out)


def test_renders_five_patches_and_a_cover(synthetic: Path, v2: Path, kselftest: Path,
                                          tmp_path: Path) -> None:
    s = render_tree(synthetic, v2, kselftest, tmp_path / "out")
    assert len(s.commits) == 5 and len(s.files) == 6
    assert s.files[0].name.endswith("0000-cover-letter.patch")
    cover = s.files[0].read_text()
    assert "Subject: [RFC PATCH v2 0/5]" in cover
    assert "11 files changed" in cover
    assert f"base-commit: {s.base.commit}" in cover
    p3 = s.files[3].read_text()
    assert "Subject: [RFC PATCH v2 3/5] KVM: SVM: Enable Bus lock threshold exit" in p3
    assert "+\tu16 bus_lock_counter;\t\t/* Offset 0x120 */" in p3
    assert "+\tu8 reserved_8[16];" in p3 and "+\tu8 reserved_9[702];" in p3


def test_render_is_byte_identical(synthetic: Path, v2: Path, kselftest: Path,
                                  tmp_path: Path) -> None:
    a = render_tree(synthetic, v2, kselftest, tmp_path / "a")
    b = render_tree(synthetic, v2, kselftest, tmp_path / "b")
    assert [p.name for p in a.files] == [p.name for p in b.files]
    for x, y in zip(a.files, b.files, strict=True):
        assert x.read_bytes() == y.read_bytes()


def test_rerender_replaces_only_its_own_files(synthetic: Path, v2: Path,
                                              kselftest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    render_tree(synthetic, v2, kselftest, out)
    render_tree(synthetic, v2, kselftest, out)
    assert (out / "notes.txt").read_text() == "mine"
    assert len(list(out.glob("*.patch"))) == 6


def test_render_never_writes_into_the_base_repo(synthetic: Path, v2: Path,
                                                kselftest: Path, tmp_path: Path) -> None:
    before = subprocess.run(["git", "-C", str(synthetic), "count-objects", "-v"],
                            capture_output=True, text=True, check=True).stdout
    refs = git(synthetic, "for-each-ref")
    render_tree(synthetic, v2, kselftest, tmp_path / "out")
    assert git(synthetic, "for-each-ref") == refs
    after = subprocess.run(["git", "-C", str(synthetic), "count-objects", "-v"],
                           capture_output=True, text=True, check=True).stdout
    assert after == before
    assert git(synthetic, "status", "--porcelain") == ""


def test_not_a_kernel_tree(tmp_path: Path, templates: Path, isolated_cache: Path) -> None:
    tree = tmp_path / "proj"
    tree.mkdir()
    git(tree, "init", "-q")
    (tree / "README").write_text("hi\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "x")
    with pytest.raises(KseriesError, match="not a kernel tree"):
        bases.resolve(str(tree), templates)
    with pytest.raises(KseriesError, match="not a git repository"):
        bases.resolve(str(tmp_path), templates)
    with pytest.raises(KseriesError, match="no such directory"):
        bases.resolve(str(tmp_path / "nope"), templates)


def test_unknown_ref(synthetic: Path, templates: Path) -> None:
    with pytest.raises(KseriesError, match=r"unknown ref 'v9\.9'"):
        bases.resolve(f"{synthetic}@v9.9", templates)


def test_unknown_debian_series(templates: Path) -> None:
    with pytest.raises(KseriesError, match=r"unknown Debian base 'debian:5\.10'"):
        bases.resolve("debian:5.10", templates)


SERIES = ["v2", "merged"]


@pytest.mark.parametrize("name", SERIES)
def test_missing_anchor_names_file_anchor_fact(tmp_path: Path, name: str,
                                               kselftest: Path, isolated_cache: Path) -> None:
    svm_c = FILES["arch/x86/kvm/svm/svm.c"].replace("INTERCEPT_RSM", "INTERCEPT_RSM_GONE")
    tree = make_tree(tmp_path / "linux", {"arch/x86/kvm/svm/svm.c": svm_c})
    with pytest.raises(KseriesError) as info:
        render_tree(tree, TEMPLATES / "series" / name, kselftest, tmp_path / "out")
    msg = str(info.value)
    assert msg.startswith("arch/x86/kvm/svm/svm.c: anchor")
    assert "INTERCEPT_RSM" in msg and "the RSM intercept that init_vmcb() sets" in msg


@pytest.mark.parametrize("name", SERIES)
def test_template_error_is_reported(synthetic: Path, name: str, kselftest: Path,
                                    tmp_path: Path) -> None:
    subprocess.run(["cp", "-r", str(TEMPLATES / "series"), str(tmp_path / "series")],
                   check=True)
    broken = tmp_path / "series" / name
    change = broken / "changes" / "cpuid-bit.toml.j2"
    change.write_text(change.read_text().replace("f.cpufeature.after", "f.cpufeature.nothere"))
    with pytest.raises(KseriesError, match=rf"{name}/changes/cpuid-bit.toml.j2: .*nothere"):
        render_tree(synthetic, broken, kselftest, tmp_path / "out")
    change.write_text("{% if %}")
    with pytest.raises(KseriesError, match="template syntax error"):
        render_tree(synthetic, broken, kselftest, tmp_path / "out2")


PARTS = {
    "v2": ("virt tag", "CPUID bit", "SVM definitions", "exit code", "SVM exit handler",
           "nested handling", "selftest"),
    "merged": ("CPUID bit", "SVM definitions", "exit code", "SVM exit handler",
               "nested handling", "common user-exit RIP", "nested RIP tracking", "selftest"),
}


@pytest.mark.parametrize("made,name", [(a, b) for a in SERIES for b in SERIES])
def test_base_with_the_feature_says_which_parts(synthetic: Path, made: str, name: str,
                                                kselftest: Path, tmp_path: Path) -> None:
    # A base that holds series `made` is refused by series `name`, naming each part.
    s = render_tree(synthetic, TEMPLATES / "series" / made, kselftest, tmp_path / "out")
    applying.create_branch(s, "with-feature", repo=synthetic)
    with pytest.raises(KseriesError) as info:
        render_tree(synthetic, TEMPLATES / "series" / name, kselftest, tmp_path / "again",
                    ref="with-feature")
    msg = str(info.value)
    assert "already contains the feature" in msg
    for part in PARTS[made]:
        assert part in msg
    for part in set(PARTS["v2"]) ^ set(PARTS["merged"]):
        assert (part in msg) == (part in PARTS[made])
    v2 = TEMPLATES / "series" / name
    # only part of it: the CPUID bit alone
    cf = FILES["arch/x86/include/asm/cpufeatures.h"] + (
        "#define X86_FEATURE_BUS_LOCK_THRESHOLD\t(15*32+29) /* Bus lock threshold */\n")
    partial = make_tree(tmp_path / "partial", {"arch/x86/include/asm/cpufeatures.h": cf})
    with pytest.raises(KseriesError, match=r"already contains the feature: CPUID bit \(word 15"):
        render_tree(partial, v2, kselftest, tmp_path / "p")


def test_apply_creates_a_branch_and_protects_others(synthetic: Path, v2: Path,
                                                    kselftest: Path, tmp_path: Path) -> None:
    s = render_tree(synthetic, v2, kselftest, tmp_path / "out")
    head = git(synthetic, "rev-parse", "HEAD")
    r = applying.create_branch(s, "buslock", repo=synthetic)
    assert git(synthetic, "rev-parse", "buslock") == s.tip == r.commit
    assert git(synthetic, "rev-list", "--count", f"{head}..buslock") == "5"
    assert git(synthetic, "rev-parse", "HEAD") == head
    assert git(synthetic, "status", "--porcelain") == ""
    with pytest.raises(KseriesError, match="already exists"):
        applying.create_branch(s, "buslock", repo=synthetic)
    with pytest.raises(KseriesError, match="checked out"):
        applying.create_branch(s, "main", repo=synthetic, force=True)
    git(synthetic, "branch", "old", head)
    applying.create_branch(s, "old", repo=synthetic, force=True)
    assert git(synthetic, "rev-parse", "old") == s.tip


def test_cli_errors_are_one_line_and_nonzero(tmp_path: Path, isolated_cache: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["render", "--base", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("kseries: error: base ")
    assert "Traceback" not in err


def test_cli_render_prints_one_line_per_patch(synthetic: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "--base", str(synthetic), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "5 patches and a cover letter in" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("  ")]
    assert len(lines) == 5
    assert lines[2].startswith("  3/5 KVM: SVM: Enable Bus lock threshold exit  [")
    assert "arch/x86/kvm/svm/svm.c" in lines[2] and lines[2].endswith("; +43 -1]")


def test_cli_pipeline_runs_the_chosen_stages(synthetic: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`pipeline` runs each stage as its subcommand, through the same parser."""
    out_dir = tmp_path / "out"
    assert main(["pipeline", "--base", str(synthetic), "--stages", "render",
                 "-o", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert len(list((out_dir / "patches").glob("*.patch"))) == 6
    summary = [ln.split() for ln in out[out.index("summary:"):].splitlines()[1:6]]
    assert summary[0][:2] == ["render", "PASS"]
    assert [s[:2] for s in summary[1:]] == [[name, "skipped"] for name in
                                            ("check", "build", "run", "submit")]
    assert main(["pipeline", "--stages", "render,deploy"]) == 1
    err = capsys.readouterr().err
    assert err == ("kseries: error: --stages: unknown stage 'deploy': choose from "
                   "render, check, build, run, submit\n")


def test_pipeline_exit_is_the_worst_stage_not_the_highest_code(
        tmp_path: Path, isolated_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Findings at check (2), then an error at build (1): the pipeline exits 1, not 2,
    and the series' build is not tried after the base's failed."""
    from fault_fixtures import CHECKPATCH  # a checkpatch.pl stand-in that finds nothing
    tree = make_tree(tmp_path / "linux", {"scripts/checkpatch.pl": CHECKPATCH})
    code = main(["pipeline", "--base", str(tree), "--stages", "render,check,build",
                 "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    summary = {ln.split()[0]: ln.split()[1]
               for ln in out[out.index("summary:"):].splitlines()[1:6]}
    assert summary == {"render": "PASS", "check": "FINDINGS", "build": "ERROR",
                       "run": "skipped", "submit": "skipped"}
    assert code == 1
    assert "=== build ===" in out and (out + err).count("[build] vm for") == 1
    # The base's build began beside check; the build stage printed what it said.
    assert "(began beside check)" in out[out.index("summary:"):]
    log = (tmp_path / "out" / "build-base.log").read_text()
    assert "[build] vm for" in log and "[build] vm for" in out


def test_unchanged_inputs_reuse_commits_and_edits_do_not(synthetic: Path, v2: Path,
                                                         kselftest: Path, tmp_path: Path) -> None:
    subprocess.run(["cp", "-r", str(v2.parent), str(tmp_path / "series")], check=True)
    copy = tmp_path / "series" / "v2"
    first = render_tree(synthetic, copy, kselftest, tmp_path / "a")
    again = render_tree(synthetic, copy, kselftest, tmp_path / "b")  # from the render cache
    assert again.commits == first.commits and again.facts == first.facts
    for x, y in zip(first.files, again.files, strict=True):
        assert x.read_bytes() == y.read_bytes()
    message = copy / "messages" / "svm-buslock.txt.j2"
    message.write_text(message.read_text().replace("A guest that keeps", "A VM that keeps", 1))
    edited = render_tree(synthetic, copy, kselftest, tmp_path / "c")
    assert edited.commits[:2] == first.commits[:2] and edited.commits[2] != first.commits[2]
    assert "A VM that keeps" in edited.files[3].read_text()
