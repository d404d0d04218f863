"""`kseries submit`: the outbox, real git send-email over it, versions, and the gate."""

from __future__ import annotations

import re
from collections import Counter
from email.utils import getaddresses
from pathlib import Path

import pytest

import submit_fixtures as fx
from kseries.check import verdict
from kseries.cli import main
from kseries.errors import KseriesError
from kseries.render.series import RenderedSeries
from kseries.submit import outbox, recipients
from submit_fixtures import SENDER, gate_met, read_mail, render, send_email, sendmail_stub

git_config, private_cache = fx.git_config, fx.private_cache
base_612, series_612 = fx.base_612, fx.series_612


def write_outbox(series: RenderedSeries, out: Path) -> outbox.Outbox:
    who = recipients.collect(series.base, series.manifest, series.files[1:])
    return outbox.write(series, who, out)


def addresses(values: list[str]) -> list[str]:
    return [a.lower() for _, a in getaddresses(values)]


# --- the outbox ----------------------------------------------------------------


def test_outbox_threads_under_the_cover_letter(series_612: RenderedSeries,
                                                tmp_path: Path) -> None:
    box = write_outbox(series_612, tmp_path / "outbox")
    assert [p.name for p in box.files] == sorted(p.name for p in (tmp_path / "outbox").iterdir())
    mails = [read_mail(p) for p in box.files]
    assert mails[0]["Subject"] == "[RFC PATCH v2 0/5] Add support for the Bus Lock Threshold"
    cover_id = mails[0]["Message-Id"]
    assert re.fullmatch(r"<20241003095105\.0-kseries-buslock-v2-[0-9a-f]{12}@amd\.com>",
                        cover_id)
    assert mails[0]["In-Reply-To"] is None
    ids = [m["Message-Id"] for m in mails]
    assert len(set(ids)) == 6
    for n, mail in enumerate(mails[1:], start=1):
        assert mail["Subject"].startswith(f"[RFC PATCH v2 {n}/5] ")
        assert mail["In-Reply-To"] == cover_id
        assert mail["References"] == cover_id
        assert mail["From"] == SENDER
    # patches by Nikunj keep him as the author, in the body (what git am reads)
    body3 = mails[3].get_content()
    assert body3.startswith("From: Nikunj A Dadhania <nikunj@amd.com>\n\n")
    assert not mails[1].get_content().startswith("From:")


def test_outbox_is_deterministic(series_612: RenderedSeries, tmp_path: Path) -> None:
    first = write_outbox(series_612, tmp_path / "a")
    second = write_outbox(series_612, tmp_path / "b")
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in second.files]


def test_each_recipient_once_per_mail(series_612: RenderedSeries, tmp_path: Path) -> None:
    box = write_outbox(series_612, tmp_path / "outbox")
    for path in box.files:
        mail = read_mail(path)
        to, cc = addresses(mail.get_all("To", [])), addresses(mail.get_all("Cc", []))
        counts = Counter(to + cc)
        assert all(n == 1 for n in counts.values()), (path.name, counts)
        assert to[:2] == ["kvm@vger.kernel.org", "linux-kernel@vger.kernel.org"]
        assert {"x86@kernel.org", "seanjc@google.com", "pbonzini@redhat.com"} <= set(cc)


def test_reroll_and_rfc_prefixes(base_612: object, tmp_path: Path) -> None:
    from kseries.base.bases import Base
    assert isinstance(base_612, Base)
    cases = [
        ({"version": 3, "rfc": False}, "[PATCH v3 2/5]", "v3-0002-"),
        ({"version": 3, "rfc": True}, "[RFC PATCH v3 2/5]", "v3-0002-"),
        ({"version": 1, "rfc": False}, "[PATCH 2/5]", "0002-"),
        ({"version": 1, "rfc": True}, "[RFC PATCH 2/5]", "0002-"),
    ]
    for i, (kw, tag, name) in enumerate(cases):
        series = render(base_612, tmp_path, f"r{i}", **kw)  # type: ignore[arg-type]
        box = write_outbox(series, tmp_path / f"out{i}")
        assert box.files[2].name.startswith(name), box.files[2].name
        assert read_mail(box.files[2])["Subject"].startswith(tag + " ")
        cover = read_mail(box.files[0])
        assert cover["Subject"].startswith(tag.replace("2/5", "0/5"))
        assert f"-v{kw['version']}-" in cover["Message-Id"]


def test_version_override_in_the_outbox_itself(series_612: RenderedSeries,
                                               tmp_path: Path) -> None:
    who = recipients.merge(series_612.manifest, [])
    version = outbox.Version.of(series_612.manifest, reroll=4, rfc=False)
    box = outbox.write(series_612, who, tmp_path / "o", version)
    assert box.files[0].name == "v4-0000-cover-letter.patch"
    assert read_mail(box.files[4])["Subject"] == (
        "[PATCH v4 4/5] KVM: X86: Add documentation about behavioral difference for "
        "KVM_EXIT_BUS_LOCK")
    with pytest.raises(KseriesError):
        outbox.Version.of(series_612.manifest, reroll=0)


def test_changelog_comes_from_the_manifest(series_612: RenderedSeries, tmp_path: Path) -> None:
    box = write_outbox(series_612, tmp_path / "outbox")
    text = read_mail(box.files[0]).get_content()
    for entry in series_612.manifest.changelog:
        assert f"\n{entry.version}\n" in text
        for item in entry.items:  # wrapped at 75 columns under its "- "
            assert f"- {' '.join(item.split())}" in " ".join(text.split("\n  "))
    v2 = outbox.Version.of(series_612.manifest)
    assert outbox.changelog_gap(series_612.manifest, v2) == ""
    gap = outbox.changelog_gap(series_612.manifest, outbox.Version.of(series_612.manifest, 3))
    assert "no entry for v3" in gap and "v2 -> v3" in gap


def test_rewriting_the_outbox_removes_only_our_old_mails(series_612: RenderedSeries,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "outbox"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "v7-0003-old.patch").write_text("old")
    write_outbox(series_612, out)
    assert (out / "notes.txt").exists()
    assert not (out / "v7-0003-old.patch").exists()


# --- real git send-email ---------------------------------------------------------


def test_git_send_email_dry_run_accepts_the_outbox(series_612: RenderedSeries,
                                                   tmp_path: Path) -> None:
    fx.need_send_email()
    box = write_outbox(series_612, tmp_path / "outbox")
    smtp, sent = sendmail_stub(tmp_path)
    res = send_email(list(box.files), smtp, tmp_path, "--dry-run")
    assert res.returncode == 0, res.stderr
    # git 2.39 says "Dry-OK. Log says:" for each mail it would have sent
    assert res.stdout.count("Dry-OK") == 6
    assert res.stdout.count("Result: OK") == 6
    # Each with the outbox's Message-Id (git 2.39 prints "Message-Id:", 2.47 "Message-ID:")
    for mail in box.mails:
        assert f"message-id: {mail.message_id}".lower() in res.stdout.lower()
    assert not sent.exists()  # a dry run hands nothing to the server


def test_git_send_email_sends_threaded_mails(series_612: RenderedSeries, tmp_path: Path) -> None:
    fx.need_send_email()
    box = write_outbox(series_612, tmp_path / "outbox")
    smtp, sent = sendmail_stub(tmp_path)
    res = send_email(list(box.files), smtp, tmp_path)
    assert res.returncode == 0, res.stderr
    mails = sorted(sent.glob("*.eml"))
    assert len(mails) == 6
    got = [read_mail(p) for p in mails]
    assert [m["Message-Id"] for m in got] == [m.message_id for m in box.mails]
    assert got[0]["Subject"].endswith("0/5] Add support for the Bus Lock Threshold")
    for m in got[1:]:
        assert m["In-Reply-To"] == box.mails[0].message_id
    envelope = (sent / "03.args").read_text().split("\n")
    rcpts = [a.lower() for a in envelope if "@" in a]
    assert len(rcpts) == len(set(rcpts))
    assert {"kvm@vger.kernel.org", "seanjc@google.com", "pbonzini@redhat.com",
            "x86@kernel.org", "tglx@linutronix.de", "mingo@redhat.com", "bp@alien8.de",
            "dave.hansen@linux.intel.com"} <= set(rcpts)
    assert got[3].get_content().startswith("From: Nikunj A Dadhania <nikunj@amd.com>")


# --- the command and its gate ----------------------------------------------------


def test_submit_refuses_without_a_check(series_612: RenderedSeries, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict.status(series_612.base, series_612.tip) is None
    out = tmp_path / "outbox"
    code = main(["submit", "--base", "debian:6.12", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2  # v2's [[gate]] rules: the check, the emulated host's PASS and suite
    gate = [ln for ln in err.splitlines() if ln.startswith("kseries: gate: ")]
    assert len(gate) == 3 and all(f"(rule {n} of " in gate[n - 1] for n in (1, 2, 3))
    assert "has never been checked" in gate[0]
    assert "kseries check --base debian:6.12" in gate[0]
    assert not out.exists()


def test_submit_refuses_after_a_failed_check(series_612: RenderedSeries, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    verdict.save(series_612.base, series_612.tip, {"status": verdict.FINDINGS})
    code = main(["submit", "--base", "debian:6.12", "-o", str(tmp_path / "outbox")])
    err = capsys.readouterr().err
    assert code == 2
    assert "the last check did not pass (findings)" in err
    assert "--force" in err


def test_submit_force_overrides_the_gate(series_612: RenderedSeries, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "outbox"
    code = main(["submit", "--base", "debian:6.12", "-o", str(out), "--force"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "--force" in captured.err and "never been checked" in captured.err
    assert len(list(out.glob("*.patch"))) == 6


def test_submit_after_a_passing_check(series_612: RenderedSeries, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    results = gate_met(series_612, tmp_path)
    out = tmp_path / "outbox"
    code = main(["submit", "--base", "debian:6.12", "-o", str(out), "-v", "3", "--no-rfc",
                 *results])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # every recipient, with why it is there
    lines = captured.out.splitlines()
    x86 = [ln for ln in lines if "x86@kernel.org" in ln]
    assert len(x86) == 1 and x86[0].startswith("Cc:")
    assert "maintainer of X86 ARCHITECTURE (32-BIT AND 64-BIT) (patches 1, 2, 3)" in x86[0]
    kvm = [ln for ln in lines if "kvm@vger.kernel.org" in ln]
    assert len(kvm) == 1 and kvm[0].startswith("To:") and "manifest To" in kvm[0]
    assert "git send-email" in captured.out
    names = sorted(p.name for p in out.glob("*.patch"))
    assert names[0] == "v3-0000-cover-letter.patch" and len(names) == 6
    assert read_mail(out / names[1])["Subject"].startswith("[PATCH v3 1/5] ")
    assert "no entry for v3" in captured.err  # the changelog needs a v2 -> v3 entry
