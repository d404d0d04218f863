"""Each check catches what it is for: deliberately broken copies of the real
rendered series, a series kseries did not make, an mbox; and the clean series
passes on both Debian bases. The fast checks only: the build checks are
tested in test_build_checks.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from check_fixtures import (
    TEMPLATES,
    add_headers,
    cells,
    check,
    copy_series,
    debian,
    edit,
    foreign_series,
    mbox_of,
    patch_file,
    rendered,
)
from kseries.base import workspace
from kseries.base.bases import Base
from kseries.check import checklist, context, conventions, mailbox
from kseries.check.context import Context
from kseries.check.report import FAIL, PASS, SKIP, WARN
from kseries.render import series as render

FAST = list(checklist.FAST)


@pytest.fixture(scope="module")
def base() -> Base:
    return debian("6.12")


@pytest.fixture(scope="module", params=["v2", "merged"])
def series612(base: Base, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> render.RenderedSeries:
    """Each series rendered for 6.12: every error case runs for both."""
    return rendered(base, tmp_path_factory.mktemp(f"render612-{request.param}"), request.param)


@pytest.fixture
def broken(series612: render.RenderedSeries, tmp_path: Path) -> Path:
    """A copy of the rendered 6.12 series to break."""
    return copy_series(series612, tmp_path / "series")


@pytest.mark.parametrize("version", ["6.12", "6.1"])
@pytest.mark.parametrize("name", ["v2", "merged"])
def test_clean_series_passes_fast_checks(name: str, version: str, tmp_path: Path) -> None:
    base = debian(version)
    report = check(base, None, FAST, tmp_path, own=name)
    assert report.own
    assert [c for c in report.cells if c.status in (FAIL, "ERROR")] == []
    assert report.status == "pass" and report.exit_code == 0
    for name in FAST:  # every fast check said something, and nothing was skipped
        assert cells(report, name), name
        assert report.worst(name) in (PASS, WARN), (name, report.worst(name))
    for row in range(1, 6):
        for name in ("applies", "trailers", "prefix", "shape", "recipients", "manifest"):
            cell = report.cell(name, row)
            assert cell is not None and cell.status == PASS, (name, row, cell)
    # checkpatch: no errors or warnings; only CHECKs and advice
    for c in cells(report, "checkpatch"):
        assert c.reason.startswith("0 errors,"), c
    # git am of the files reproduces the rendered commits exactly
    assert report.tip and not [c for c in report.cells if "not the rendered" in c.reason]


def test_patch_that_does_not_apply(base: Base, broken: Path, tmp_path: Path) -> None:
    edit(patch_file(broken, 3), " \tINTERCEPT_TLBSYNC,\n", " \tINTERCEPT_TLBSYNX,\n")
    report = check(base, broken, ["applies"], tmp_path)
    assert [c.status for c in cells(report, "applies") if c.row in (1, 2)] == [PASS, PASS]
    failed = report.cell("applies", 3)
    assert failed is not None and failed.status == FAIL
    assert "arch/x86/include/asm/svm.h" in failed.reason
    later = [report.cell("applies", r) for r in (4, 5)]
    assert all(c is not None and c.status == SKIP and "patch 3" in c.reason for c in later)
    assert report.exit_code == 2 and not report.tip


def test_checkpatch_error(base: Base, broken: Path, tmp_path: Path) -> None:
    edit(patch_file(broken, 3), "+\tINTERCEPT_BUSLOCK,\n", "+\tINTERCEPT_BUSLOCK, \n")
    report = check(base, broken, ["checkpatch", "applies"], tmp_path)
    cell = report.cell("checkpatch", 3)
    assert cell is not None and cell.status == FAIL
    assert cell.reason.startswith("1 errors,") and "TRAILING_WHITESPACE" in cell.reason
    assert report.cell("checkpatch", 1).status == PASS  # type: ignore[union-attr]
    applied = report.cell("applies", 3)
    assert applied is not None and applied.status == WARN and "whitespace" in applied.reason


def test_missing_signed_off_by(base: Base, broken: Path, tmp_path: Path) -> None:
    edit(patch_file(broken, 2), "Signed-off-by: Manali Shukla <manali.shukla@amd.com>\n", "")
    report = check(base, broken, ["trailers", "manifest"], tmp_path)
    cell = report.cell("trailers", 2)
    assert cell is not None and cell.status == FAIL and cell.reason == "no Signed-off-by"
    assert report.cell("trailers", 1).status == PASS  # type: ignore[union-attr]
    assert report.cell("manifest", 2).status == FAIL  # type: ignore[union-attr]
    assert report.exit_code == 2


def test_author_without_signed_off_by(base: Base, broken: Path, tmp_path: Path) -> None:
    edit(patch_file(broken, 3), "Signed-off-by: Nikunj A Dadhania <nikunj@amd.com>\n", "")
    report = check(base, broken, ["trailers"], tmp_path)
    cell = report.cell("trailers", 3)
    assert cell is not None and cell.status == FAIL
    assert "the author Nikunj A Dadhania <nikunj@amd.com> has no Signed-off-by" in cell.details


def test_co_developed_by_without_its_signed_off_by(
    base: Base, broken: Path, tmp_path: Path,
) -> None:
    edit(patch_file(broken, 5),
         "Co-developed-by: Manali Shukla <manali.shukla@amd.com>\n"
         "Signed-off-by: Manali Shukla <manali.shukla@amd.com>\n",
         "Co-developed-by: Manali Shukla <manali.shukla@amd.com>\n")
    report = check(base, broken, ["trailers"], tmp_path)
    cell = report.cell("trailers", 5)
    assert cell is not None and cell.status == FAIL
    assert any("is not followed by their Signed-off-by" in d for d in cell.details)
    assert any("does not sign last" in d for d in cell.details)  # the sender is Manali


def diffstat_line(path: Path, file: str) -> tuple[str, int] | None:
    """The diffstat line of ``file`` in a mail, and the count it gives."""
    m = re.search(rf"^ {re.escape(file)}\s+\|\s+(\d+) .*$", path.read_text(), re.M)
    return (m.group(0), int(m.group(1))) if m else None


def test_diffstat_that_lies(base: Base, broken: Path, tmp_path: Path) -> None:
    cover = patch_file(broken, 0)
    found = diffstat_line(cover, "arch/x86/kvm/svm/svm.c")
    assert found
    line, n = found
    edit(cover, line, line.replace(f"| {n:3d} ", f"| {n + 1:3d} "))
    nested = diffstat_line(cover, "arch/x86/kvm/svm/nested.c")
    assert nested
    edit(cover, nested[0] + "\n", "")
    report = check(base, broken, ["shape", "applies"], tmp_path)
    problems = [d for c in cells(report, "shape", FAIL) for d in c.details]
    assert f"diffstat says {n + 1} lines for arch/x86/kvm/svm/svm.c, the patches change {n}" \
        in problems
    assert "diffstat misses arch/x86/kvm/svm/nested.c" in problems
    assert all(c.row == 0 for c in cells(report, "shape", FAIL))


def test_shortlog_and_base_commit(base: Base, broken: Path, series612: render.RenderedSeries,
                                  tmp_path: Path) -> None:
    cover = patch_file(broken, 0)
    nikunj = series612.manifest.patches[2]  # patch 3 is Nikunj's in both series
    assert nikunj.author.name == "Nikunj A Dadhania"
    edit(cover, f"  {nikunj.subject}\n", "  KVM: SVM: Something else\n")
    edit(cover, f"base-commit: {base.commit}", "base-commit: " + "1" * 40)
    report = check(base, broken, ["shape"], tmp_path)
    reasons = [d for c in cells(report, "shape", FAIL) for d in c.details or (c.reason,)]
    assert "shortlog has Nikunj A Dadhania: KVM: SVM: Something else" in reasons
    assert any(r.startswith("base-commit 111111111111 is not the base") for r in reasons)


def test_wrong_numbering(base: Base, broken: Path, series612: render.RenderedSeries,
                         tmp_path: Path) -> None:
    prefix = series612.manifest.prefix  # "RFC PATCH v2" or "PATCH v5"
    other = prefix.removeprefix("RFC ") if prefix.startswith("RFC ") else f"RFC {prefix}"
    edit(patch_file(broken, 4), f"[{prefix} 4/5]", f"[{prefix} 4/6]")
    edit(patch_file(broken, 5), f"[{prefix} 5/5]", f"[{other} 5/5]")
    report = check(base, broken, ["shape"], tmp_path)
    four, five = report.cell("shape", 4), report.cell("shape", 5)
    assert four is not None and four.status == FAIL and "numbered 4/6" in four.reason
    assert five is not None and five.status == FAIL and f"[{other}]" in five.reason
    assert report.cell("shape", 3).status == PASS  # type: ignore[union-attr]


def test_no_cover_letter_for_five_patches(base: Base, broken: Path, tmp_path: Path) -> None:
    patch_file(broken, 0).unlink()
    report = check(base, broken, ["shape"], tmp_path)
    cover = report.cell("shape", 0)
    assert cover is not None and cover.status == FAIL and "no cover letter" in cover.reason


def test_missing_recipients(base: Base, broken: Path, tmp_path: Path) -> None:
    for f in sorted(broken.glob("*.patch")):
        add_headers(f, "To: kvm@vger.kernel.org\nCc: Sean Christopherson <seanjc@google.com>")
    report = check(base, broken, ["recipients"], tmp_path)
    p2 = report.cell("recipients", 2)  # x86/cpufeatures: the x86 maintainers are missing
    assert p2 is not None and p2.status == FAIL
    assert any(d.startswith("x86@kernel.org (") for d in p2.details)
    assert "tglx@linutronix.de" in p2.reason
    assert any("tglx@linutronix.de" in d for d in p2.details)
    series = report.cell("recipients", 0)
    assert series is not None and series.status == FAIL
    assert any("shuah@kernel.org" in d for d in series.details)  # patch 5's selftests maintainer


def test_recipients_covered(base: Base, broken: Path, tmp_path: Path) -> None:
    everyone = ("Paolo Bonzini <pbonzini@redhat.com>, Sean Christopherson <seanjc@google.com>, "
                "Thomas Gleixner <tglx@linutronix.de>, Ingo Molnar <mingo@redhat.com>, "
                "Borislav Petkov <bp@alien8.de>, Dave Hansen <dave.hansen@linux.intel.com>, "
                "x86@kernel.org, \"H. Peter Anvin\" <hpa@zytor.com>, "
                "Jonathan Corbet <corbet@lwn.net>, Shuah Khan <shuah@kernel.org>, "
                "kvm@vger.kernel.org, linux-doc@vger.kernel.org, "
                "linux-kernel@vger.kernel.org, linux-kselftest@vger.kernel.org")
    add_headers(patch_file(broken, 0), f"To: {everyone}")
    report = check(base, broken, ["recipients"], tmp_path)
    assert report.worst("recipients") == PASS, report.problems()


def test_unaddressed_series_is_advice(base: Base, tmp_path: Path) -> None:
    series = foreign_series(base, tmp_path, [
        ("KVM: SVM: Say what the handler does",
         "arch/x86/kvm/svm/svm.c", "static int pause_interception(", "static int "
         "pause_interception(  /* PAUSE */"),
    ])
    report = check(base, series, ["recipients"], tmp_path)
    cell = report.cell("recipients", 1)
    assert cell is not None and cell.status == WARN and "not addressed yet" in cell.reason
    assert "seanjc@google.com" in " ".join(cell.details)


def test_series_not_made_by_kseries(base: Base, tmp_path: Path) -> None:
    series = foreign_series(base, tmp_path, [
        ("KVM: SVM: Name the pause handler's purpose",
         "arch/x86/kvm/svm/svm.c", "static int pause_interception(struct kvm_vcpu *vcpu)\n{\n",
         "static int pause_interception(struct kvm_vcpu *vcpu)\n{\n\t/* PAUSE filter */\n"),
        ("KVM: x86: Tweak the cpufeatures comment",
         "arch/x86/include/asm/cpufeatures.h", "Defines x86 CPU feature bits",
         "Defines the x86 CPU feature bits"),
    ])
    report = check(base, series, FAST, tmp_path)
    assert not report.own
    assert report.cell("manifest", 0).status == SKIP  # type: ignore[union-attr]
    for name in ("applies", "trailers", "shape"):
        assert report.worst(name) == PASS, (name, report.problems())
    assert report.cell("prefix", 1).status == PASS  # type: ignore[union-attr]
    bad = report.cell("prefix", 2)
    assert bad is not None and bad.status == FAIL
    assert "'KVM: x86:'" in bad.reason and "x86/cpufeatures:" in bad.details[0]
    assert report.tip  # applied: the verdict is keyed by the applied tip
    assert report.exit_code == 2


def test_mbox_input(base: Base, series612: render.RenderedSeries, tmp_path: Path) -> None:
    box = mbox_of(list(series612.files), tmp_path / "thread.mbox")
    parsed = mailbox.read(box)
    assert parsed.cover is not None and len(parsed.patches) == 5
    report = check(base, box, FAST, tmp_path)
    assert report.own and report.status == "pass", report.problems()
    assert report.tip == series612.tip  # git am of the mbox gives the rendered commits


def test_b4_am_output(base: Base, series612: render.RenderedSeries, tmp_path: Path) -> None:
    b4 = shutil.which("b4") or str(Path(sys.executable).parent / "b4")
    if not Path(b4).exists():
        pytest.skip("needs b4 on PATH (pip install b4) to make `b4 am` output")
    files = list(series612.files)
    copies = copy_series(series612, tmp_path / "mails")
    for i, f in enumerate(sorted(copies.glob("*.patch"))):
        refs = "" if i == 0 else "In-Reply-To: <cover@kseries.test>\n"
        add_headers(f, f"Message-Id: <{'cover' if i == 0 else i}@kseries.test>\n{refs}")
    box = mbox_of(sorted(copies.glob("*.patch")), tmp_path / "thread.mbox")
    out = tmp_path / "b4"
    subprocess.run([b4, "--offline-mode", "am", "-o", str(out), "-m", str(box),
                    "cover@kseries.test"], check=True, capture_output=True)
    mbx = sorted(out.glob("*.mbx"))
    assert len(mbx) == 1 and len(files) == 6
    parsed = mailbox.read(mbx[0])
    assert len(parsed.patches) == 5 and parsed.cover is not None  # the .cover next to it
    report = check(base, mbx[0], ["applies", "trailers", "shape", "manifest"], tmp_path)
    assert report.worst("applies") == PASS and report.worst("trailers") == PASS


def test_prefix_learned_from_a_git_base_history(tmp_path: Path) -> None:
    """On a base with history, the prefixes its log uses for the files count too."""
    tree = tmp_path / "linux"
    tree.mkdir()
    env = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    run("init", "-q")
    (tree / "drivers" / "foo").mkdir(parents=True)
    for i, subject in enumerate(["foo/core: Add the driver", "foo/core: Fix a leak"]):
        (tree / "drivers" / "foo" / "core.c").write_text(f"int v = {i};\n")
        run("add", "-A")
        run("commit", "-qm", subject)
    base = Base("t", "t", tree / ".git", run("rev-parse", "HEAD"), "test tree")
    diff = ("diff --git a/drivers/foo/core.c b/drivers/foo/core.c\n--- a/drivers/foo/core.c\n"
            "+++ b/drivers/foo/core.c\n@@ -1 +1 @@\n-int v = 1;\n+int v = 2;\n")
    mails = [mailbox.parse_mail((f"From: T <t@x>\nSubject: [PATCH {n}/2] {s}\n\nText.\n\n"
                                 f"Signed-off-by: T <t@x>\n---\n{diff}").encode(), f"{n}")
             for n, s in ((1, "foo/core: Bump v"), (2, "foo: Bump v again"))]
    ctx = Context(base, mailbox.assemble(mails, source="t"), TEMPLATES, tmp_path / "work")
    good, bad = list(conventions.prefix(ctx))
    assert good.status == PASS and "(history)" in good.reason
    assert bad.status == FAIL and bad.details == ("expected one of: foo/core:",)


def test_patch_diffstat_that_lies(base: Base, broken: Path, tmp_path: Path) -> None:
    # the first patch that touches svm.c (3 in v2, 4 in merged)
    row = next(r for r in range(1, 6)
               if diffstat_line(patch_file(broken, r), "arch/x86/kvm/svm/svm.c"))
    found = diffstat_line(patch_file(broken, row), "arch/x86/kvm/svm/svm.c")
    assert found
    line, n = found
    edit(patch_file(broken, row), line, line.replace(f"| {n} ", f"| {n - 4} "))
    report = check(base, broken, ["shape"], tmp_path)
    cell = report.cell("shape", row)
    assert cell is not None and cell.status == FAIL
    assert cell.reason == (f"diffstat says {n - 4} lines for arch/x86/kvm/svm/svm.c, "
                           f"the diff changes {n}")
    assert report.cell("shape", 2).status == PASS  # type: ignore[union-attr]


def test_unfilled_cover_letter(base: Base, broken: Path, tmp_path: Path) -> None:
    edit(patch_file(broken, 0), "Add support for the Bus Lock Threshold", "*** SUBJECT HERE ***")
    report = check(base, broken, ["shape"], tmp_path)
    assert any("*** SUBJECT HERE ***" in c.reason for c in cells(report, "shape", FAIL))


def test_applies_recovers_from_a_git_am_left_half_done(
    base: Base, broken: Path, series612: render.RenderedSeries, tmp_path: Path,
) -> None:
    one = patch_file(broken, 1)
    context_line = re.search(r"^@@.*\n( .+)$", one.read_text(), re.M)
    assert context_line  # the first context line of the first hunk, made not to match
    edit(one, context_line.group(1), context_line.group(1) + " /* not in the base */")
    with context.tree_lock(base):
        tree = workspace.checkout(base, base.commit, context.TREE_NAME)
        env = {"GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@x", "GIT_AUTHOR_NAME": "T",
               "GIT_AUTHOR_EMAIL": "t@x"}
        failed = subprocess.run(["git", "-C", str(tree), "am", str(patch_file(broken, 1))],
                                env={**os.environ, **env}, capture_output=True, check=False)
        assert failed.returncode != 0  # and git am's state stays behind, as after a crash
    report = check(base, copy_series(series612, tmp_path / "clean"), ["applies"], tmp_path)
    assert report.worst("applies") == PASS, report.problems()


def test_single_patch_sent_for_someone_else(tmp_path: Path) -> None:
    """No cover letter: the mail's From is the sender, an in-body From: the author."""
    base = Base("t", "t", tmp_path, "0" * 40, "no tree needed")
    text = ("From: Sender <sender@x.org>\nSubject: [PATCH] KVM: SVM: Fix\n\n"
            "From: Author <author@x.org>\n\nText.\n\nSigned-off-by: Author <author@x.org>\n"
            "{last}---\ndiff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-a\n+b\n")
    for last, status in (("Signed-off-by: Sender <sender@x.org>\n", PASS), ("", FAIL)):
        mail = mailbox.parse_mail(text.format(last=last).encode(), "one.patch")
        ctx = Context(base, mailbox.assemble([mail], source="t"), TEMPLATES, tmp_path)
        (trailer,) = conventions.trailers(ctx)
        assert trailer.status == status, trailer
        (numbering,) = [c for c in conventions.shape(ctx) if c.row == 1]
        assert numbering.status == PASS and numbering.reason == "a single patch"


def test_layout_is_for_series_that_touch_the_vmcb(base: Base, tmp_path: Path) -> None:
    series = foreign_series(base, tmp_path, [
        ("x86/cpufeatures: Reword a comment", "arch/x86/include/asm/cpufeatures.h",
         "Defines x86 CPU feature bits", "Defines the x86 CPU feature bits"),
    ])
    report = check(base, series, ["layout"], tmp_path)  # no build: it is not about the VMCB
    cell = report.cell("layout", 0)
    assert cell is not None and cell.status == SKIP and "asm/svm.h" in cell.reason
