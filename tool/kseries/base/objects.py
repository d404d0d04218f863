"""Git objects in-process: read trees and blobs, write blobs, trees and commits.

Reads go through GitPython's object database (one persistent ``cat-file``
process, which also sees the base's objects through alternates); writes are
loose objects written here, into the scratch repository only. A render thus
spawns no process per file, and reads each tree and blob once.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime
from pathlib import Path

import git

from kseries.base.cache import write_atomic

TREE_MODE = 0o040000
FILE_MODE = 0o100644

Entry = tuple[bytes, int, str]  # (binary sha, mode, name)


def parse_tree(data: bytes) -> list[Entry]:
    """Entries of a raw tree object: ``<octal mode> <name>\\0<20-byte sha>`` each."""
    out = []
    i, n = 0, len(data)
    while i < n:
        sp = data.index(b" ", i)
        nul = data.index(b"\0", sp)
        out.append((data[nul + 1:nul + 21], int(data[i:sp], 8), data[sp + 1:nul].decode()))
        i = nul + 21
    return out


def serialize_tree(entries: list[Entry]) -> bytes:
    def key(e: Entry) -> str:
        return e[2] + "/" if e[1] == TREE_MODE else e[2]

    return b"".join(
        f"{mode:o} {name}".encode() + b"\0" + sha for sha, mode, name in sorted(entries, key=key)
    )


class ObjectWriter:
    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo
        self.objects = Path(repo.git_dir) / "objects"
        self._trees: dict[bytes, list[Entry]] = {}

    def read_blob(self, tree: bytes, path: str) -> bytes | None:
        """A file's content under the tree with binary sha ``tree``, or None."""
        entry = self._lookup(tree, path)
        if entry is None or entry[1] == TREE_MODE:
            return None
        return bytes(self.repo.odb.stream(entry[0]).read())

    def _lookup(self, tree: bytes, path: str) -> tuple[bytes, int] | None:
        sha, mode = tree, TREE_MODE
        for part in path.split("/"):
            if mode != TREE_MODE:
                return None
            found = [e for e in self._entries(sha) if e[2] == part]
            if not found:
                return None
            sha, mode = found[0][0], found[0][1]
        return sha, mode

    def _entries(self, sha: bytes) -> list[Entry]:
        if sha not in self._trees:
            self._trees[sha] = parse_tree(self.repo.odb.stream(sha).read())
        return self._trees[sha]

    def store(self, kind: str, data: bytes) -> bytes:
        """Write a loose object (if it is not there yet) and return its binary sha."""
        raw = f"{kind} {len(data)}".encode() + b"\0" + data
        sha = hashlib.sha1(raw).digest()
        hexsha = sha.hex()
        path = self.objects / hexsha[:2] / hexsha[2:]
        if not path.exists():
            write_atomic(path, zlib.compress(raw, 1))
        return sha

    def write_tree(self, base_tree: bytes, files: dict[str, bytes]) -> bytes:
        """A new tree: ``base_tree`` with ``files`` (path -> content) replaced or added."""
        grouped: dict[str, dict[str, bytes]] = {}
        blobs: dict[str, bytes] = {}
        for path, data in files.items():
            head, _, rest = path.partition("/")
            if rest:
                grouped.setdefault(head, {})[rest] = data
            else:
                blobs[head] = self.store("blob", data)
        entries = {e[2]: e for e in self._entries(base_tree)} if base_tree else {}
        for name, sha in blobs.items():
            mode = entries[name][1] if name in entries else FILE_MODE
            entries[name] = (sha, mode, name)
        for name, sub in grouped.items():
            old = entries.get(name)
            sub_base = old[0] if old and old[1] == TREE_MODE else b""
            entries[name] = (self.write_tree(sub_base, sub), TREE_MODE, name)
        listed = list(entries.values())
        sha = self.store("tree", serialize_tree(listed))
        self._trees[sha] = listed
        return sha

    def write_commit(
        self, tree: bytes, parent: str, author: str, committer: str, when: datetime,
        message: str,
    ) -> str:
        stamp = f"{int(when.timestamp())} +0000"
        body = (
            f"tree {tree.hex()}\nparent {parent}\n"
            f"author {author} {stamp}\ncommitter {committer} {stamp}\n\n{message}"
        )
        return self.store("commit", body.encode()).hex()
