"""Who sends the series: ``--from``, else git's user, else the manifest's sender.

The sender certifies what they send: where they are not the last to sign a
patch, the patch files get their Signed-off-by (as b4 and ``git format-patch
--signoff`` add it), and the mails are from them.
"""

from __future__ import annotations

from email.utils import parseaddr

from kseries import proc
from kseries.errors import KseriesError
from kseries.render.manifest import Person


def parse(spec: str) -> Person:
    name, email = parseaddr(spec)
    if not name or "@" not in email or "<" not in spec:
        raise KseriesError(f"--from {spec!r}: not a sender", hint='give "Name <email>"')
    return Person("sender", name, email)


def git_user() -> Person | None:
    """git's user.name and user.email, as git itself would use them; None without both."""
    got = []
    for key in ("user.name", "user.email"):
        res = proc.run(["git", "config", "--get", key], check=False, what=f"git config {key}")
        got.append(res.stdout.strip() if res.ok else "")
    name, email = got
    return Person("sender", name, email) if name and "@" in email else None


def resolve(spec: str | None) -> Person | None:
    """The sender asked for (``--from``) or configured (git); None: the manifest's."""
    return parse(spec) if spec else git_user()
