"""Fixtures for the submission tests (outbox, recipients, range-diff, b4).

Every test runs with a private kseries cache whose ``bases`` directory is the
real cache's (the imported Debian bases are read, never written), so verdicts,
scratch repositories and outboxes of a test never touch anyone else's, and with
a private git configuration (``GIT_CONFIG_GLOBAL``), never the user's.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from kseries.base import bases
from kseries.base.cache import cache_root
from kseries.render import series as rendering

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
KSELFTEST = ROOT / "kselftest"
TEST_NAME, TEST_EMAIL = "Kseries Test", "test@example.org"
SENDER = "Manali Shukla <manali.shukla@amd.com>"

SENDMAIL = """#!{python}
import sys, pathlib
out = pathlib.Path({out!r})
out.mkdir(parents=True, exist_ok=True)
n = len(list(out.glob("*.eml")))
(out / f"{{n:02d}}.args").write_text("\\n".join(sys.argv[1:]))
(out / f"{{n:02d}}.eml").write_bytes(sys.stdin.buffer.read())
"""


@pytest.fixture
def git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private git configuration with a user; the user's own is never read."""
    cfg = tmp_path / "gitconfig"
    cfg.write_text(f"[user]\n\tname = {TEST_NAME}\n\temail = {TEST_EMAIL}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                "GIT_COMMITTER_EMAIL", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(var, raising=False)
    return cfg


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kseries cache of the test's own that reads the real cache's imported bases."""
    real_bases = cache_root() / "bases"
    cache = tmp_path / "cache"
    cache.mkdir()
    if real_bases.is_dir():
        (cache / "bases").symlink_to(real_bases)
    monkeypatch.setenv("KSERIES_CACHE", str(cache))
    return cache


def kselftest_dir(tmp_path: Path) -> Path:
    """The project's kselftest/, or a stand-in while kvm_buslock_test.c is being written."""
    if (KSELFTEST / "kvm_buslock_test.c.j2").exists():
        return KSELFTEST
    stand_in = tmp_path / "kselftest"
    shutil.copytree(KSELFTEST, stand_in) if KSELFTEST.exists() else stand_in.mkdir()
    (stand_in / "kvm_buslock_test.c").write_text(
        "// SPDX-License-Identifier: GPL-2.0-only\n/* placeholder for tests */\n"
        "int main(void)\n{\n\treturn 0;\n}\n")
    return stand_in


def render(base: bases.Base, tmp_path: Path, name: str = "series", *,
           version: int | None = None, rfc: bool | None = None,
           series: str = "v2") -> rendering.RenderedSeries:
    return rendering.render(base, TEMPLATES / "series" / series, kselftest_dir(tmp_path),
                            tmp_path / name, version=version, rfc=rfc)


@pytest.fixture
def base_612(debian_612: bases.Base, private_cache: Path, git_config: Path) -> bases.Base:
    return debian_612


@pytest.fixture
def series_612(base_612: bases.Base, tmp_path: Path) -> rendering.RenderedSeries:
    return render(base_612, tmp_path)


@pytest.fixture
def merged_612(base_612: bases.Base, tmp_path: Path) -> rendering.RenderedSeries:
    return render(base_612, tmp_path, "merged", series="merged")


def need_send_email() -> None:
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                               check=True).stdout.strip()
    if not (Path(exec_path) / "git-send-email").exists():
        pytest.skip("needs git send-email: apt-get install git-email")


def sendmail_stub(tmp_path: Path) -> tuple[Path, Path]:
    """A local "SMTP server" command for git send-email that keeps each mail in a file."""
    out = tmp_path / "sent"
    script = tmp_path / "sendmail.py"
    script.write_text(SENDMAIL.format(python=sys.executable, out=str(out)))
    script.chmod(0o755)
    return script, out


def send_email(
    files: list[Path], smtp: Path, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """The real ``git send-email`` with ``sendemail.smtpserver`` set to a local command."""
    argv = ["git", "-c", f"sendemail.smtpserver={smtp}", "send-email", "--confirm=never",
            f"--from={SENDER}", "--suppress-cc=self", *args, *map(str, files)]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=120)


def read_mail(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        msg = email.message_from_binary_file(fh, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def b4_or_skip() -> str:
    found = shutil.which("b4") or str(Path(sys.executable).parent / "b4")
    if not Path(found).exists():
        pytest.skip("needs b4 (pip install b4; kseries depends on it)")
    return found


def gate_met(series: rendering.RenderedSeries, tmp_path: Path) -> list[str]:
    """v2's gate met: a passing check of the tip, and (FIXTURE) the emulated host's PASS
    and its svm suite run; the ``--results`` arguments that give those to submit."""
    from kseries.check import verdict
    from testing_fixtures import EMULATED_AMD, lab_results, suite_results

    verdict.save(series.base, series.tip, {"status": verdict.PASS})
    out = lab_results(tmp_path / "emulated-results", series.base, series.tip, (EMULATED_AMD,))
    svm = suite_results(tmp_path / "emulated-suite", series.base, series.tip)
    return ["--results", str(out), "--results", str(svm)]
