"""A series as mails: read from patch files, an mbox, or a rendering.

Each mail is parsed once into headers, the numbered subject, the commit
message, its trailers, the notes after ``---`` (diffstat, changelog) and the
diff (parsed with unidiff). Checks read these; ``Mail.raw`` keeps the bytes for
the tools that want a file (``git am``, ``checkpatch.pl``).
"""

from __future__ import annotations

import dataclasses
import email
import email.header
import email.message
import email.policy
import email.utils
import mailbox as stdlib_mailbox
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from kseries.errors import KseriesError

PATCH_SUFFIXES = (".patch", ".diff", ".eml", ".mbx", ".mbox")
_BRACKETS = re.compile(r"^\s*((?:\[[^\]]*\]\s*)*)(.*)$", re.S)
_NUMBER = re.compile(r"^(\d+)/(\d+)$")
_VERSION = re.compile(r"^v(\d+)$", re.I)
_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):\s+(\S.*)$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9_./+\-]+$")
_BASE_COMMIT = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.M)
_DIFF_GIT = re.compile(r"^diff --git (?:a/)?(\S+) (?:b/)?(\S*)")


@dataclass(frozen=True)
class Subject:
    raw: str
    tags: tuple[str, ...]  # the bracketed words: ("RFC", "PATCH", "v2", "3/5")
    number: int | None
    total: int | None
    version: int
    rfc: bool
    title: str  # the subject after the brackets

    @property
    def prefix(self) -> str:
        """The subsystem prefix of the title: "KVM: SVM:" of "KVM: SVM: Enable ..."."""
        return subsystem_prefix(self.title)

    @property
    def tag_text(self) -> str:
        """The bracket's words without the numbering: "RFC PATCH v2"."""
        return " ".join(t for t in self.tags if not _NUMBER.match(t))


@dataclass(frozen=True)
class Trailer:
    tag: str
    value: str

    @property
    def email(self) -> str:
        return email.utils.parseaddr(self.value)[1].lower()

    @property
    def name(self) -> str:
        return email.utils.parseaddr(self.value)[0]

    def __str__(self) -> str:
        return f"{self.tag}: {self.value}"


@dataclass(frozen=True)
class FileChange:
    path: str
    added: int
    removed: int
    new: bool
    deleted: bool
    binary: bool


@dataclass(frozen=True)
class Mail:
    name: str  # the file name, or "message N of FILE"
    raw: bytes  # the mail on its own, as git am and checkpatch.pl read it
    sender: str  # the From header
    author: str  # an in-body From: line if there is one, else the sender
    date: str
    message_id: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: Subject
    body: str  # the commit message (cover letter text) without the subject
    trailers: tuple[Trailer, ...]
    notes: str  # between "---" and the diff: diffstat, changelog
    diff: str
    files: tuple[FileChange, ...]
    base_commit: str
    damage: str = ""  # why the diff cannot be read whole (cut off, mangled); "" when it can

    @property
    def is_cover(self) -> bool:
        return self.subject.number == 0 or (not self.diff and self.subject.number is None)

    @property
    def author_email(self) -> str:
        return email.utils.parseaddr(self.author)[1].lower()

    @property
    def sender_email(self) -> str:
        return email.utils.parseaddr(self.sender)[1].lower()

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc


@dataclass(frozen=True)
class Series:
    source: str  # where it was read from, for the report
    cover: Mail | None
    patches: tuple[Mail, ...]

    @property
    def mails(self) -> tuple[Mail, ...]:
        return ((self.cover,) if self.cover else ()) + self.patches

    @property
    def sender(self) -> str:
        """Who sends the series: the cover letter's From, else the first patch's."""
        first = self.cover or self.patches[0]
        return first.sender

    @property
    def base_commit(self) -> str:
        for mail in (self.cover, *reversed(self.patches)):
            if mail is not None and mail.base_commit:
                return mail.base_commit
        return ""


def subsystem_prefix(title: str) -> str:
    parts = []
    rest = title
    while ": " in rest:
        head, tail = rest.split(": ", 1)
        if not _PREFIX_PART.match(head):
            break
        parts.append(head + ":")
        rest = tail
    return " ".join(parts)


def parse_subject(raw: str) -> Subject:
    text = " ".join(raw.split())
    m = _BRACKETS.match(text)
    brackets, title = (m.group(1), m.group(2)) if m else ("", text)
    tags = tuple(w for group in re.findall(r"\[([^\]]*)\]", brackets) for w in group.split())
    number = total = None
    version = 1
    for tag in tags:
        if n := _NUMBER.match(tag):
            number, total = int(n.group(1)), int(n.group(2))
        elif v := _VERSION.match(tag):
            version = int(v.group(1))
    rfc = any(t.upper() == "RFC" for t in tags)
    return Subject(text, tags, number, total, version, rfc, title.strip())


def parse_trailers(body: str) -> tuple[Trailer, ...]:
    """The trailers of a commit message: its last paragraph, when it is made of them."""
    paragraphs = [p for p in re.split(r"\n\s*\n", body.strip("\n")) if p.strip()]
    if not paragraphs:
        return ()
    lines = [ln.rstrip() for ln in paragraphs[-1].splitlines() if ln.strip()]
    found = [_TRAILER.match(ln) for ln in lines]
    matches = [m for m in found if m is not None]
    # A backporter's note, "[ Name: what changed ]", may go on over indented lines.
    notes, open_note = 0, False
    for ln, m in zip(lines, found, strict=True):
        if m is None and (ln.startswith("[") or (open_note and ln.startswith(" "))):
            notes += 1
            open_note = not ln.endswith("]")
        else:
            open_note = False
    if not matches or len(matches) + notes < len(lines):
        return ()
    return tuple(Trailer(m.group(1), m.group(2).strip()) for m in matches)


def _text_of(msg: email.message.Message) -> str:
    part: email.message.Message = msg
    if msg.is_multipart():
        for sub in msg.walk():
            if sub.get_content_type() == "text/plain" and not sub.is_multipart():
                part = sub
                break
        else:
            return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def _header(msg: email.message.Message, name: str) -> str:
    value = msg.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _addresses(msg: email.message.Message, name: str) -> tuple[str, ...]:
    values = [str(v) for v in msg.get_all(name, [])]
    return tuple(
        email.utils.formataddr((n, a)) for n, a in email.utils.getaddresses(values) if a
    )


def _split_text(text: str) -> tuple[str, str, str]:
    """Commit message, notes (after ``---``) and diff of a mail's text."""
    text = text.replace("\r\n", "\n")
    diff_at = re.search(r"^diff --git ", text, re.M)
    head, diff = (text[: diff_at.start()], text[diff_at.start():]) if diff_at else (text, "")
    if diff:
        sig = re.search(r"^-- \n", diff, re.M)
        if sig:
            diff = diff[: sig.start()]
    sep = re.search(r"^---\s*$", head, re.M)
    if sep:
        return head[: sep.start()], head[sep.end():].lstrip("\n"), diff
    return head, "", diff


def _files(diff: str) -> tuple[tuple[FileChange, ...], str]:
    """The files a diff changes, and why it cannot be read whole ("" when it can).

    A diff that was cut off or mangled is still listed as far as its ``diff --git``
    headers and +/- lines go, so the checks can say what they can about it.
    """
    if not diff.strip():
        return (), ""
    try:
        patchset = PatchSet(diff)
    except UnidiffParseError as exc:
        return _rough_files(diff), f"cannot parse the diff ({exc}): cut off or whitespace-damaged?"
    out = []
    for pf in patchset:
        path = pf.path
        out.append(FileChange(path, pf.added, pf.removed, pf.is_added_file,
                              pf.is_removed_file, pf.is_binary_file))
    return tuple(out), _cut_header(diff)


def _rough_files(diff: str) -> tuple[FileChange, ...]:
    """Files and +/- counts of a diff unidiff cannot parse, from its plain lines."""
    out: list[FileChange] = []
    path, added, removed = "", 0, 0
    for line in [*diff.splitlines(), "diff --git a/ b/"]:
        m = _DIFF_GIT.match(line)
        if m:
            if path:
                out.append(FileChange(path, added, removed, False, False, False))
            path, added, removed = m.group(2), 0, 0
        elif line.startswith("+") and not line.startswith("+++ "):
            added += 1
        elif line.startswith("-") and not line.startswith("--- "):
            removed += 1
    return tuple(out)


def _cut_header(diff: str) -> str:
    """A file's section that stops after its ``diff --git``/``index`` lines: cut off there."""
    sections = re.split(r"^(?=diff --git )", diff, flags=re.M)
    for section in sections:
        lines = [ln for ln in section.splitlines() if ln.strip()]
        if not lines or not lines[0].startswith("diff --git "):
            continue
        if all(ln.startswith(("diff --git ", "index ")) for ln in lines):
            m = _DIFF_GIT.match(lines[0])
            name = m.group(2) if m else lines[0]
            return f"the diff stops in the header of {name}: cut off?"
    return ""


def parse_mail(raw: bytes, name: str) -> Mail:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject_text = str(email.header.make_header(email.header.decode_header(
        _header(msg, "Subject"))))
    sender = str(email.header.make_header(email.header.decode_header(_header(msg, "From"))))
    if not subject_text:
        raise KseriesError(f"{name}: not a mail (no Subject header)",
                           hint="give patch files made by git format-patch, or an mbox")
    message, notes, diff = _split_text(_text_of(msg))
    author = sender
    m = re.match(r"\s*From:\s*(.+)\n", message)
    if m:  # an in-body From: names the author when someone else sends the patch
        author = m.group(1).strip()
        message = message[m.end():]
    base = _BASE_COMMIT.search(notes + "\n" + message + "\n" + _tail_after_diff(_text_of(msg)))
    files, damage = _files(diff)
    return Mail(
        name=name,
        raw=raw,
        sender=sender,
        author=author,
        date=_header(msg, "Date"),
        message_id=_header(msg, "Message-Id").strip("<>"),
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        subject=parse_subject(subject_text),
        body=message.strip("\n"),
        trailers=parse_trailers(message),
        notes=notes,
        diff=diff,
        files=files,
        base_commit=base.group(1) if base else "",
        damage=damage,
    )


def _tail_after_diff(text: str) -> str:
    """What follows the diff (format-patch puts base-commit: after the last hunk)."""
    m = re.search(r"^base-commit:.*$", text, re.M)
    return m.group(0) if m else ""


def read(path: Path) -> Series:
    """A directory of patch files, an mbox, or a single patch file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in PATCH_SUFFIXES and p.is_file())
        if not files:
            raise KseriesError(f"{path}: no patch files (*.patch) in it",
                               hint="give a directory made by git format-patch, or an mbox")
        return read_files(files, source=str(path))
    if not path.is_file():
        raise KseriesError(f"{path}: no such file or directory", hint="give patches or an mbox")
    mails = [parse_mail(raw, f"message {i} of {path.name}")
             for i, raw in enumerate(_split_mbox(path), start=1)]
    cover = path.with_suffix(".cover")  # `b4 am` writes the cover letter next to the mbox
    if cover.is_file() and path.suffix != ".cover":
        mails[:0] = [parse_mail(raw, cover.name) for raw in _split_mbox(cover)]
    return assemble(mails, source=str(path))


def read_files(files: Sequence[Path], *, source: str = "") -> Series:
    mails = []
    for f in files:
        for i, raw in enumerate(_split_mbox(f), start=1):
            mails.append(parse_mail(raw, f.name if i == 1 else f"{f.name} (message {i})"))
    return assemble(mails, source=source or str(files[0].parent))


def _split_mbox(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if not data.startswith(b"From "):
        return [data]  # one mail without an mbox From_ line
    box = stdlib_mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def assemble(mails: Sequence[Mail], *, source: str) -> Series:
    """Order the mails of one series: replies dropped, the newest version kept."""
    mails = [m for m in mails if not re.match(r"(?i)\s*re:", m.subject.raw)]
    # A numbered patch without a diff was cut off before it: a finding, not a mail to drop.
    mails = [m if m.diff or m.is_cover else dataclasses.replace(
        m, damage="no diff in it: cut off before the diff?")
        for m in mails if m.diff or m.is_cover or m.subject.number]
    if not mails:
        raise KseriesError(f"{source}: no patches in it",
                           hint="give patch files made by git format-patch, or an mbox")
    newest = max(m.subject.version for m in mails)
    mails = [m for m in mails if m.subject.version == newest]
    covers = [m for m in mails if m.is_cover]
    patches = [m for m in mails if not m.is_cover]
    if not patches:
        raise KseriesError(f"{source}: a cover letter but no patches")
    if all(p.subject.number is not None for p in patches):
        patches.sort(key=lambda p: p.subject.number or 0)
    return Series(source, covers[0] if covers else None, tuple(patches))
