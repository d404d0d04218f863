"""The two pinned Debian bases: golden files, git am, and the cover letter's facts.

These use the real imported bases (about a minute each to import the first
time, then cached).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from kseries.base import bases, workspace
from kseries.render import series as render

ROOT = Path(__file__).resolve().parents[1]

# From the RFC v2 cover letter (shared/reference/cover-letter-v2.txt).
SUBJECTS_V2 = [
    ("Manali Shukla", "x86/cpu: Add virt tag in /proc/cpuinfo"),
    ("Manali Shukla", "x86/cpufeatures: Add CPUID feature bit for the Bus Lock Threshold"),
    ("Nikunj A Dadhania", "KVM: SVM: Enable Bus lock threshold exit"),
    ("Manali Shukla",
     "KVM: X86: Add documentation about behavioral difference for KVM_EXIT_BUS_LOCK"),
    ("Nikunj A Dadhania", "KVM: selftests: Add bus lock exit test"),
]
# From design.md section 7: the series as review settled it.
SUBJECTS_MERGED = [
    ("Manali Shukla",
     "KVM: x86: Make kvm_pio_request.linear_rip a common field for user exits"),
    ("Manali Shukla", "x86/cpufeatures: Add CPUID feature bit for the Bus Lock Threshold"),
    ("Nikunj A Dadhania",
     "KVM: SVM: Add architectural definitions/assets for Bus Lock Threshold"),
    ("Manali Shukla", "KVM: SVM: Add support for KVM_CAP_X86_BUS_LOCK_EXIT on SVM CPUs"),
    ("Nikunj A Dadhania", "KVM: selftests: Add test to verify KVM_CAP_X86_BUS_LOCK_EXIT"),
]
SELFTEST_FILES = {
    "tools/testing/selftests/kvm/Makefile",
    "tools/testing/selftests/kvm/x86_64/kvm_buslock_test.c",
}
FILES = {
    "Documentation/virt/kvm/api.rst", "arch/x86/include/asm/cpufeature.h",
    "arch/x86/include/asm/cpufeatures.h", "arch/x86/include/asm/svm.h",
    "arch/x86/include/uapi/asm/svm.h", "arch/x86/kernel/cpu/mkcapflags.sh",
    "arch/x86/kernel/cpu/proc.c", "arch/x86/kvm/svm/nested.c", "arch/x86/kvm/svm/svm.c",
    *SELFTEST_FILES,
}
FILES_MERGED = {
    "Documentation/virt/kvm/api.rst", "arch/x86/include/asm/kvm_host.h",
    "arch/x86/kvm/x86.c", "arch/x86/include/asm/cpufeatures.h",
    "arch/x86/include/asm/svm.h", "arch/x86/include/uapi/asm/svm.h",
    "arch/x86/kvm/svm/nested.c", "arch/x86/kvm/svm/svm.c", "arch/x86/kvm/svm/svm.h",
    *SELFTEST_FILES,
}
# 6.1's selftests .gitignore lists every test binary; 6.12's ignores by wildcard.
GITIGNORE = "tools/testing/selftests/kvm/.gitignore"
MANALI = "Manali Shukla <manali.shukla@amd.com>"
NIKUNJ = "Nikunj A Dadhania <nikunj@amd.com>"
SEAN = "Sean Christopherson <seanjc@google.com>"
CHAINS = {
    "Manali Shukla": [f"Signed-off-by: {MANALI}"],
    "Nikunj A Dadhania": [f"Signed-off-by: {NIKUNJ}", f"Co-developed-by: {MANALI}",
                          f"Signed-off-by: {MANALI}"],
}
EXPECTED = {
    "v2": (SUBJECTS_V2, FILES, [CHAINS[a] for a, _ in SUBJECTS_V2]),
    "merged": (SUBJECTS_MERGED, FILES_MERGED,
               [CHAINS[a] for a, _ in SUBJECTS_MERGED[:3]]
               + [[f"Suggested-by: {SEAN}", f"Signed-off-by: {MANALI}"],
                  CHAINS["Nikunj A Dadhania"]]),
}


@pytest.fixture(scope="module", params=[("v2", "6.12"), ("v2", "6.1"), ("merged", "6.12"),
                                        ("merged", "6.1")], ids=lambda p: "-".join(p))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             ) -> render.RenderedSeries:
    from conftest import KSELFTEST, TEMPLATES, debian
    series, version = request.param
    b = debian(version)
    return render.render(b, TEMPLATES / "series" / series, KSELFTEST,
                         tmp_path_factory.mktemp(f"out-{series}-{b.key}"))


def test_reference_cover_letter_agrees_with_these_facts() -> None:
    ref = ROOT.parent / "shared" / "reference" / "cover-letter-v2.txt"
    if not ref.exists():
        pytest.skip(f"{ref} is not beside the project; the facts above are copied from it")
    text = ref.read_text()
    for _, subject in SUBJECTS_V2:
        assert subject in text
    for path in FILES:
        assert path.split("/")[-1] in text


def test_matches_the_golden_files(rendered: render.RenderedSeries) -> None:
    where = f"patches/{rendered.manifest.id}/{rendered.base.key}"
    golden = ROOT / where
    names = sorted(p.name for p in golden.glob("*.patch"))
    assert names == sorted(p.name for p in rendered.files), "run `make patches` and commit"
    for path in rendered.files:
        assert path.read_bytes() == (golden / path.name).read_bytes(), (
            f"{path.name} differs from {where}: run `make patches`")


def test_the_base_commit_is_the_golden_files_one(rendered: render.RenderedSeries) -> None:
    """The .deb fetched from the archive imports to the commit the golden files name,
    on Debian 12 and 13 alike (the tarball is the same bytes from either)."""
    golden = ROOT / "patches" / rendered.manifest.id / rendered.base.key
    cover = next(golden.glob("*-0000-cover-letter.patch")).read_text()
    assert f"base-commit: {rendered.base.commit}\n" in cover, (
        f"{rendered.base.label} imported as {rendered.base.commit}, not the golden files' base")


def test_subjects_authors_trailers_files(rendered: render.RenderedSeries) -> None:
    subjects, files, chains = EXPECTED[rendered.manifest.id]
    seen_files: set[str] = set()
    for (author, subject), chain, path in zip(subjects, chains, rendered.files[1:], strict=True):
        text = path.read_text()
        assert re.search(rf"^From: {re.escape(author)} <", text, re.M)
        assert f"] {subject}" in text.replace("\n ", " ")
        trailers = re.findall(r"^(?:Signed-off-by|Co-developed-by|Suggested-by): .*$",
                              text, re.M)
        assert trailers == chain
        seen_files |= set(re.findall(r"^diff --git a/(\S+) ", text, re.M))
        body = text.split("\n\n", 1)[1].split("\n---\n", 1)[0]
        assert max(len(line) for line in body.splitlines()) <= 75
    listed = rendered.facts.selftest.ignore_entry != ""
    assert listed == (rendered.base.key == "debian-6.1")
    assert seen_files == files | ({GITIGNORE} if listed else set())


def test_cover_letter_within_75_columns(rendered: render.RenderedSeries) -> None:
    text = rendered.files[0].read_text()
    body = text.split("\n\n", 1)[1].split("\n-- \n", 1)[0]
    long = [line for line in body.splitlines() if len(line) > 75 and not line.startswith(" ")]
    assert not long, long
    assert "The patches are based on" in body and "15.14.5 Bus Lock Threshold" in body


def test_git_am_on_a_fresh_worktree(rendered: render.RenderedSeries, tmp_path: Path) -> None:
    tree = workspace.checkout(rendered.base, rendered.base.commit, "test-am")
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[user]\n\tname = CI\n\temail = ci@example.org\n")
    env = dict(os.environ, GIT_CONFIG_GLOBAL=str(cfg), GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(["git", "-C", str(tree), "am", "--quiet", *map(str, rendered.files[1:])],
                   env=env, check=True, capture_output=True, text=True)
    tip_tree = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD^{tree}"],
                              capture_output=True, text=True, check=True).stdout.strip()
    want = workspace.git(rendered.repo, "rev-parse", f"{rendered.tip}^{{tree}}").stdout.strip()
    assert tip_tree == want
    count = subprocess.run(["git", "-C", str(tree), "rev-list", "--count",
                            f"{rendered.base.commit}..HEAD"], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert count == "5"


def test_import_is_deterministic_and_fast_when_warm(rendered: render.RenderedSeries) -> None:
    again = bases.resolve(rendered.base.label, ROOT / "templates")
    assert again.commit == rendered.base.commit
    # The fixed author and date make the commit id the same on every machine.
    info = workspace.git(again.repo, "log", "-1", "--format=%an|%ad|%s", "--date=unix",
                         again.commit).stdout.strip()
    assert info.startswith("kseries import|946684800|Debian linux-source-")
