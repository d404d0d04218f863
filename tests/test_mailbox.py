"""Reading a series as mails: subjects, trailers, diffs, directories and mboxes.

No kernel base needed: the mails are made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.check import mailbox
from kseries.errors import KseriesError

DIFF = """\
diff --git a/arch/x86/kvm/svm/svm.c b/arch/x86/kvm/svm/svm.c
index 1111111..2222222 100644
--- a/arch/x86/kvm/svm/svm.c
+++ b/arch/x86/kvm/svm/svm.c
@@ -1,3 +1,4 @@
 a
+b
 c
-d
+e
diff --git a/tools/testing/selftests/kvm/x86/t.c b/tools/testing/selftests/kvm/x86/t.c
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/tools/testing/selftests/kvm/x86/t.c
@@ -0,0 +1,2 @@
+int main(void)
+{ return 0; }
"""


def mail(subject: str, body: str = "Body.\n\nSigned-off-by: A U Thor <author@example.org>\n",
         *, sender: str = "A U Thor <author@example.org>", diff: str = DIFF,
         extra: str = "", unixfrom: bool = True) -> str:
    head = "From 1234567890abcdef1234567890abcdef12345678 Mon Sep 17 00:00:00 2001\n" \
        if unixfrom else ""
    return (f"{head}From: {sender}\nDate: Thu, 3 Oct 2024 09:51:01 +0000\n"
            f"Subject: {subject}\n{extra}\n{body}---\n stat | 1 +\n\n{diff}-- \n2.39.5\n\n")


def test_subject_numbering_version_rfc_and_prefix() -> None:
    s = mailbox.parse_subject("[RFC PATCH v2 3/5] KVM: SVM: Enable Bus lock threshold exit")
    assert (s.number, s.total, s.version, s.rfc) == (3, 5, 2, True)
    assert s.title == "KVM: SVM: Enable Bus lock threshold exit"
    assert s.prefix == "KVM: SVM:" and s.tag_text == "RFC PATCH v2"
    plain = mailbox.parse_subject("[PATCH] x86/cpufeatures: Add a bit")
    assert (plain.number, plain.total, plain.version, plain.rfc) == (None, None, 1, False)
    assert plain.prefix == "x86/cpufeatures:"
    assert mailbox.parse_subject("[PATCH 1/2] Add a bit: no prefix").prefix == ""
    folded = mailbox.parse_subject("[PATCH v3 4/5] KVM: X86: Add documentation for\n KVM_EXIT")
    assert folded.title == "KVM: X86: Add documentation for KVM_EXIT" and folded.version == 3


def test_trailers_are_the_last_paragraph() -> None:
    body = ("Subject line body.\n\nFixes: nothing: really\n\nSigned-off-by: A <a@x.org>\n"
            "Co-developed-by: B <b@x.org>\n[b: reworded]\nSigned-off-by: B <b@x.org>\n")
    tr = mailbox.parse_trailers(body)
    assert [t.tag for t in tr] == ["Signed-off-by", "Co-developed-by", "Signed-off-by"]
    assert tr[1].email == "b@x.org" and tr[1].name == "B"
    assert mailbox.parse_trailers("Text.\n\nThis is: prose, not trailers\nreally.\n") == ()


def test_parse_mail(tmp_path: Path) -> None:
    raw = mail("[PATCH 1/1] KVM: SVM: Do it",
               extra="To: kvm@vger.kernel.org\nCc: Sean <seanjc@google.com>, x86@kernel.org\n")
    m = mailbox.parse_mail(raw.encode(), "one.patch")
    assert m.author == m.sender == "A U Thor <author@example.org>"
    assert m.to == ("kvm@vger.kernel.org",)
    assert m.cc == ("Sean <seanjc@google.com>", "x86@kernel.org")
    assert [t.value for t in m.trailers] == ["A U Thor <author@example.org>"]
    assert [(f.path, f.added, f.removed, f.new) for f in m.files] == [
        ("arch/x86/kvm/svm/svm.c", 2, 1, False),
        ("tools/testing/selftests/kvm/x86/t.c", 2, 0, True),
    ]
    assert m.notes.startswith(" stat | 1 +") and not m.is_cover


def test_in_body_from_names_the_author() -> None:
    body = "From: Real Author <real@example.org>\n\nBody.\n\nSigned-off-by: Real Author " \
           "<real@example.org>\nSigned-off-by: Sender <sender@example.org>\n"
    m = mailbox.parse_mail(mail("[PATCH] x86: X", body, sender="Sender <sender@example.org>")
                           .encode(), "m")
    assert m.author == "Real Author <real@example.org>" and m.author_email == "real@example.org"
    assert m.sender_email == "sender@example.org"
    assert m.body.startswith("Body.")


def test_quoted_printable_and_encoded_subject() -> None:
    raw = ("From: =?utf-8?q?J=C3=B6rg_R=C3=B6del?= <joro@example.org>\n"
           "Subject: =?utf-8?q?=5BPATCH=5D_x86=3A_Caf=C3=A9?=\n"
           "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n"
           "\nCaf=C3=A9.\n\nSigned-off-by: J=C3=B6rg R=C3=B6del <joro@example.org>\n---\n"
           + DIFF.replace("=", "=3D"))
    m = mailbox.parse_mail(raw.encode(), "qp")
    assert m.subject.title == "x86: Café" and m.sender.startswith("Jörg Rödel")
    assert m.trailers[0].name == "Jörg Rödel" and len(m.files) == 2


def test_directory_orders_by_number(tmp_path: Path) -> None:
    (tmp_path / "0002-b.patch").write_text(mail("[PATCH v2 2/2] x86: B"))
    (tmp_path / "0001-a.patch").write_text(mail("[PATCH v2 1/2] x86: A"))
    (tmp_path / "0000-cover-letter.patch").write_text(
        mail("[PATCH v2 0/2] Cover", "Text\n\nbase-commit: abcdef1234567\n", diff=""))
    (tmp_path / "notes.txt").write_text("not a patch")
    s = mailbox.read(tmp_path)
    assert s.cover is not None and [p.subject.title for p in s.patches] == ["x86: A", "x86: B"]
    assert s.base_commit == "abcdef1234567" and s.sender == "A U Thor <author@example.org>"


def test_mbox_drops_replies_and_older_versions(tmp_path: Path) -> None:
    box = tmp_path / "thread.mbox"
    box.write_text(
        mail("[PATCH 1/2] x86: Old A") + mail("[PATCH v2 2/2] x86: B")
        + mail("Re: [PATCH v2 1/2] x86: A", "Looks good.\n", diff="")
        + mail("[PATCH v2 1/2] x86: A") + mail("[PATCH 2/2] x86: Old B"))
    s = mailbox.read(box)
    assert [p.subject.title for p in s.patches] == ["x86: A", "x86: B"]
    assert s.cover is None and s.source == str(box)


def test_single_patch_without_mbox_line(tmp_path: Path) -> None:
    f = tmp_path / "one.patch"
    f.write_text(mail("[PATCH] KVM: x86: One", unixfrom=False))
    s = mailbox.read(f)
    assert len(s.patches) == 1 and s.patches[0].subject.prefix == "KVM: x86:"


def test_errors_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(KseriesError, match="no patch files"):
        mailbox.read(tmp_path)
    with pytest.raises(KseriesError, match="no such file"):
        mailbox.read(tmp_path / "missing.mbox")
    (tmp_path / "x.patch").write_text("just text\n")
    with pytest.raises(KseriesError, match="not a mail"):
        mailbox.read(tmp_path / "x.patch")
    good = tmp_path / "good" / "x.patch"
    good.parent.mkdir()
    good.write_text(mail("[PATCH] x86: fine"))
    (tmp_path / "x.patch").write_text(mail("[PATCH] x86: broken", diff=DIFF.replace(
        "@@ -1,3 +1,4 @@", "@@ -1,30 +1,4 @@")))
    broken = mailbox.read(tmp_path / "x.patch").patches[0]  # a finding for the checks
    assert broken.damage.startswith("cannot parse the diff (")
    assert [f.path for f in broken.files] == [f.path for f in mailbox.read(good).patches[0].files]
