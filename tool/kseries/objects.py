"""Writing git objects in-process: blobs, trees along changed paths, commits.

Reads go through GitPython's object database (one persistent cat-file), writes
go to the repository's own object store as loose objects, so a render spawns
no process per file.
"""

from __future__ import annotations

from datetime import datetime
from io import BytesIO

import git
from git.objects.fun import tree_entries_from_data, tree_to_stream
from gitdb import IStream

TREE_MODE = 0o040000
FILE_MODE = 0o100644


class ObjectWriter:
    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo

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
            entries = self._entries(sha)
            found = [e for e in entries if e[2] == part]
            if not found:
                return None
            sha, mode = found[0][0], found[0][1]
        return sha, mode

    def _entries(self, sha: bytes) -> list[tuple[bytes, int, str]]:
        return list(tree_entries_from_data(self.repo.odb.stream(sha).read()))

    def _store(self, kind: bytes, data: bytes) -> bytes:
        stream = self.repo.odb.store(IStream(kind, len(data), BytesIO(data)))
        return bytes(stream.binsha)

    def write_tree(self, base_tree: bytes, files: dict[str, bytes]) -> bytes:
        """A new tree: ``base_tree`` with ``files`` (path -> content) replaced or added."""
        grouped: dict[str, dict[str, bytes]] = {}
        blobs: dict[str, bytes] = {}
        for path, data in files.items():
            head, _, rest = path.partition("/")
            if rest:
                grouped.setdefault(head, {})[rest] = data
            else:
                blobs[head] = self._store(b"blob", data)
        entries = {e[2]: e for e in self._entries(base_tree)} if base_tree else {}
        for name, sha in blobs.items():
            mode = entries[name][1] if name in entries else FILE_MODE
            entries[name] = (sha, mode, name)
        for name, sub in grouped.items():
            old = entries.get(name)
            sub_base = old[0] if old and old[1] == TREE_MODE else b""
            entries[name] = (self.write_tree(sub_base, sub), TREE_MODE, name)
        ordered = sorted(entries.values(), key=lambda e: e[2] + "/" if e[1] == TREE_MODE else e[2])
        buf = BytesIO()
        tree_to_stream(ordered, buf.write)
        return self._store(b"tree", buf.getvalue())

    def write_commit(
        self, tree: bytes, parent: str, author: str, committer: str, when: datetime,
        message: str,
    ) -> str:
        stamp = f"{int(when.timestamp())} +0000"
        body = (
            f"tree {tree.hex()}\nparent {parent}\n"
            f"author {author} {stamp}\ncommitter {committer} {stamp}\n\n{message}"
        )
        return self._store(b"commit", body.encode()).hex()
