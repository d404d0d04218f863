"""The outbox: the rendered series as the mails that go out.

Each mail gets From (the sender; a patch by someone else carries its author
in a ``From:`` line at the top of the body, as git send-email and b4 do), To,
Cc, a Subject with the version and RFC prefix, and a Message-Id; the patches
reply to the cover letter (In-Reply-To and References). Message-Ids are derived
from the series (tip, version, RFC) and each mail's date, so writing the
outbox twice gives the same mails. ``git send-email OUTBOX/*.patch`` sends them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.utils import formataddr, parseaddr, parsedate_to_datetime
from pathlib import Path

from kseries.errors import KseriesError
from kseries.render.manifest import Manifest
from kseries.render.series import RenderedSeries
from kseries.submit.recipients import Recipients

_SUBJECT_TAGS = re.compile(r"^\[[^\]]*\]\s*")
_OUR_MAIL = re.compile(r"^(v\d+-)?\d{4}-.+\.patch$")
_FROM_LINE = re.compile(r"^From [0-9a-f]{40} ")
_BASE_COMMIT_LINE = "\nbase-commit: "
_REPLACED = {"from", "date", "subject", "to", "cc", "message-id", "in-reply-to", "references"}
FOLD = 78


@dataclass(frozen=True)
class Version:
    """What goes into the brackets: ``[RFC PATCH v3 2/5]``."""

    number: int
    rfc: bool
    subject_prefix: str = "PATCH"

    @classmethod
    def of(cls, manifest: Manifest, reroll: int | None = None,
           rfc: bool | None = None) -> Version:
        if reroll is not None and reroll < 1:
            raise KseriesError(f"--reroll {reroll}: a version is 1 or more")
        return cls(manifest.version if reroll is None else reroll,
                   manifest.rfc if rfc is None else rfc, manifest.subject_prefix)

    @property
    def prefix(self) -> str:
        words = (["RFC"] if self.rfc else []) + [self.subject_prefix]
        if self.number > 1:
            words.append(f"v{self.number}")
        return " ".join(words)

    def tag(self, number: int, total: int) -> str:
        return f"[{self.prefix} {number}/{total}]"


@dataclass(frozen=True)
class Mail:
    path: Path
    subject: str
    message_id: str
    in_reply_to: str


@dataclass(frozen=True)
class Outbox:
    directory: Path
    mails: tuple[Mail, ...]
    version: Version

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(m.path for m in self.mails)


def changelog_gap(manifest: Manifest, version: Version) -> str:
    """Why the cover letter's changelog may be stale for this version ("" when it is not)."""
    if version.number <= 1:
        return ""
    want = f"v{version.number}"
    if any(want in entry.version.split() or entry.version.endswith(want)
           for entry in manifest.changelog):
        return ""
    return (f"the manifest's changelog has no entry for {want} (the cover letter lists "
            f"{', '.join(e.version for e in manifest.changelog) or 'none'}): add a "
            f"[[series.changelog]] with version = \"v{version.number - 1} -> {want}\"")


def split_mail(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """(mbox ``From `` line, unfolded headers, body) of a git format-patch file."""
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise KseriesError("a patch file without a header/body separator")
    lines = head.split("\n")
    first = lines.pop(0) if lines and _FROM_LINE.match(lines[0]) else ""
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        else:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return first, headers, body


def fold(name: str, value: str, width: int = FOLD) -> str:
    """A header line folded at spaces the way git format-patch folds a Subject."""
    words = value.split(" ")
    lines, line = [], f"{name}: {words[0]}"
    for word in words[1:]:
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = f" {word}"
        else:
            line += f" {word}"
    lines.append(line)
    return "\n".join(lines)


def address_list(name: str, idents: tuple[str, ...]) -> str:
    """``To: a,\\n\\tb``: one address per line."""
    return f"{name}: " + ",\n\t".join(idents)


def message_id(series: RenderedSeries, version: Version, number: int, date: str) -> str:
    """``<YYYYMMDDHHMMSS.N-kseries-NAME-vV-DIGEST@DOMAIN>``: the same inputs, the same id."""
    stamp = parsedate_to_datetime(date).strftime("%Y%m%d%H%M%S")
    seed = f"{series.tip}\0{version.prefix}\0{series.manifest.name}"
    digest = hashlib.sha1(seed.encode()).hexdigest()[:12]
    domain = (series.sender or series.manifest.sender).email.rpartition("@")[2] or "localhost"
    return f"<{stamp}.{number}-kseries-{series.manifest.name}-v{version.number}-{digest}@{domain}>"


def _stem(path: Path) -> str:
    return re.sub(r"^v\d+-", "", path.name)


def insert_range_diff(body: str, range_diff: str, label: str) -> str:
    """Put a range-diff after the diffstat, before ``base-commit:`` (where git puts it)."""
    block = f"Range-diff against {label}:\n{range_diff.rstrip()}\n"
    at = body.rfind(_BASE_COMMIT_LINE)
    if at < 0:
        return body.rstrip("\n") + "\n\n" + block
    return body[:at] + "\n" + block + body[at:]


def write(
    series: RenderedSeries,
    recipients: Recipients,
    directory: Path,
    version: Version | None = None,
    *,
    range_diff: tuple[str, str] | None = None,
) -> Outbox:
    """Write the mails into ``directory`` (cover letter first); returns what was written.

    ``version`` defaults to the series manifest's. ``range_diff`` is (label,
    text) to put into the cover letter. Earlier mails of ours in ``directory``
    are removed; other files are left alone.
    """
    version = version or Version.of(series.manifest)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file() and _OUR_MAIL.match(old.name):
            old.unlink()
    total = len(series.files) - 1
    sender = series.sender or series.manifest.sender
    mails: list[Mail] = []
    cover_id = ""
    for number, src in enumerate(series.files):
        first, headers, body = split_mail(src.read_text())
        fields = dict(headers)
        author, date = fields.get("From", ""), fields.get("Date", "")
        if not date or not author:
            raise KseriesError(f"{src}: no From or Date header", hint="re-render the series")
        subject = _SUBJECT_TAGS.sub("", fields.get("Subject", ""), count=1)
        subject = f"{version.tag(number, total)} {subject}"
        msgid = message_id(series, version, number, date)
        if number == 0:
            cover_id = msgid
            if range_diff:
                body = insert_range_diff(body, range_diff[1], range_diff[0])
        elif parseaddr(author)[1].lower() != sender.email.lower():
            body = f"From: {author}\n\n{body}"
        out = [first] if first else []
        out += [f"From: {formataddr((sender.name, sender.email))}", f"Date: {date}",
                fold("Subject", subject)]
        if recipients.to:
            out.append(address_list("To", recipients.to))
        if recipients.cc:
            out.append(address_list("Cc", recipients.cc))
        out.append(f"Message-Id: {msgid}")
        if number:
            out += [f"In-Reply-To: {cover_id}", f"References: {cover_id}"]
        out += [f"{k}: {v}" for k, v in headers if k.lower() not in _REPLACED]
        name = (f"v{version.number}-" if version.number > 1 else "") + _stem(src)
        path = directory / name
        path.write_text("\n".join(out) + "\n\n" + body)
        mails.append(Mail(path, subject, msgid, cover_id if number else ""))
    return Outbox(directory, tuple(mails), version)
