"""`kseries submit --stable TREE` (a backport of the merged series) and `--from` (the
sender signs last), checked with the series checks kseries already has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import submit_fixtures as fx
from kseries.base import bases
from kseries.check import checklist
from kseries.check.report import PASS
from kseries.cli import main
from kseries.render import manifest as manifests
from submit_fixtures import read_mail, send_email, sendmail_stub

git_config, private_cache = fx.git_config, fx.private_cache
base_612, merged_612 = fx.base_612, fx.merged_612

BACKPORTER = "Ada Backport <ada@example.org>"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@pytest.fixture
def base_61(debian_61: bases.Base, private_cache: Path, git_config: Path) -> bases.Base:
    return debian_61


def submit(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "outbox"
    code = main(["submit", "--series", "merged", "-o", str(out), "--force", *args])
    return code, out


def bodies(out: Path) -> list[str]:
    return [read_mail(p).get_content() for p in sorted(out.glob("*.patch"))]


def message_of(body: str) -> str:
    """The commit message of a patch mail: after an in-body From, up to ---."""
    text = body.split("\n---\n", 1)[0]
    return text.split("\n\n", 1)[1] if text.startswith("From: ") else text


@pytest.fixture
def stable_61(base_61: bases.Base, tmp_path: Path) -> Path:
    code, out = submit(tmp_path, "--base", "debian:6.1", "--stable", "6.1.y",
                       "--from", BACKPORTER)
    assert code == 0
    return out


def test_stable_subjects_upstream_commits_and_notes(stable_61: Path) -> None:
    mails = [read_mail(p) for p in sorted(stable_61.glob("*.patch"))]
    assert len(mails) == 6
    wanted = manifests.load(TEMPLATES / "series" / "merged")
    for n, mail in enumerate(mails):
        assert mail["Subject"].startswith(f"[PATCH 6.1.y {n}/5] "), mail["Subject"]
        assert "v5" not in mail["Subject"] and "RFC" not in mail["Subject"]
        assert mail["From"] == BACKPORTER
    for patch, body in zip(wanted.patches, bodies(stable_61)[1:], strict=True):
        msg = message_of(body)
        assert msg.startswith(f"commit {patch.upstream} upstream.\n\n"), msg[:80]
        assert re.fullmatch(r"[0-9a-f]{40}", patch.upstream)
        # the original trailers, in order, then the backporter's note (if any) and sign-off
        tail = msg.rstrip("\n").split("\n\n")[-1]
        for trailer in patch.trailers:
            assert str(trailer) in tail
        assert tail.splitlines()[-1] == f"Signed-off-by: {BACKPORTER}"
    msgs = [message_of(b) for b in bodies(stable_61)[1:]]
    # notes come from what the probes found on 6.1, only where 6.1 differs from upstream
    assert "[ Ada Backport:" not in msgs[0] and "[ Ada Backport:" not in msgs[2]
    assert 'the comment starts with "" to keep the flag out of\n  /proc/cpuinfo' in msgs[1]
    assert "the comment names SEV-ES guests only: this tree has no SNP" in \
        " ".join(msgs[3].split())
    assert "the test is in x86_64/ and listed in Makefile" in " ".join(msgs[4].split())
    assert "Reviewed-by: Borislav Petkov (AMD) <bp@alien8.de>" in msgs[1]
    cover = bodies(stable_61)[0]
    assert "This is a backport to 6.1.y of AMD's Bus Lock Threshold support" in cover
    for patch in wanted.patches:
        assert patch.upstream[:12] in cover
    assert "Adapted for this tree:\n- Patch 2: the comment starts with" in cover
    assert "Testing done:" in cover


def test_stable_output_passes_the_series_checks(base_61: bases.Base, stable_61: Path,
                                                tmp_path: Path) -> None:
    ctx = checklist.prepare(base_61, TEMPLATES, TEMPLATES / "series" / "merged",
                            fx.KSELFTEST, stable_61, tmp_path / "work")
    report = checklist.run(ctx, ["trailers", "shape", "prefix"])
    bad = [c for c in report.cells if c.status != PASS]
    assert not bad, report.problems()
    assert {c.check for c in report.cells} == {"trailers", "shape", "prefix"}
    # 75 columns in every commit message and in the cover letter's text
    for body in bodies(stable_61):
        long = [ln for ln in message_of(body).splitlines() if len(ln) > 75]
        assert not long, long


def test_stable_output_passes_git_send_email_dry_run(stable_61: Path, tmp_path: Path) -> None:
    fx.need_send_email()
    smtp, sent = sendmail_stub(tmp_path)
    res = send_email(sorted(stable_61.glob("*.patch")), smtp, tmp_path, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("Result: OK") == 6
    assert not sent.exists()


@pytest.mark.parametrize("args, line", [
    (["--stable"], "--stable needs the name of the tree the backport goes to"),
    (["--series", "v2", "--stable", "6.6.y"], "series v2 was never merged upstream"),
])
def test_stable_refusals_are_one_line(base_612: bases.Base, tmp_path: Path, args: list[str],
                                      line: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "outbox"
    code = main(["submit", "--base", "debian:6.12", "-o", str(out), "--force", *args])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("kseries:")]
    assert code == 1
    assert len(err) == 1 and line in err[0], err
    assert not out.exists()


def test_sender_signs_last_when_not_the_last_signer(base_612: bases.Base,
                                                    tmp_path: Path) -> None:
    code, out = submit(tmp_path, "--base", "debian:6.12", "--from", BACKPORTER)
    assert code == 0
    for mail, body in zip([read_mail(p) for p in sorted(out.glob("*.patch"))][1:],
                          bodies(out)[1:], strict=True):
        assert mail["From"] == BACKPORTER
        assert mail["Subject"].startswith("[PATCH v5 ")
        tail = message_of(body).rstrip("\n").splitlines()
        assert tail[-1] == f"Signed-off-by: {BACKPORTER}"
        assert tail[-2].startswith("Signed-off-by: Manali Shukla")


def test_sender_already_last_adds_nothing(base_612: bases.Base, tmp_path: Path) -> None:
    code, out = submit(tmp_path, "--base", "debian:6.12", "--from",
                       "Manali Shukla <manali.shukla@amd.com>")
    assert code == 0
    for body in bodies(out)[1:]:
        sobs = [ln for ln in message_of(body).splitlines() if ln.startswith("Signed-off-by:")]
        assert sobs.count("Signed-off-by: Manali Shukla <manali.shukla@amd.com>") == 1


def test_git_user_is_the_default_sender(base_612: bases.Base, tmp_path: Path) -> None:
    code, out = submit(tmp_path, "--base", "debian:6.12")
    assert code == 0
    who = f"{fx.TEST_NAME} <{fx.TEST_EMAIL}>"
    for body in bodies(out)[1:]:
        assert message_of(body).rstrip("\n").splitlines()[-1] == f"Signed-off-by: {who}"
