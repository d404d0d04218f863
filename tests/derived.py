"""Trees shaped like other kernels, derived from a real Debian base.

Only Debian's 6.1 and 6.12 are on disk. A derived tree is one commit on top of
such a base, in a bare repository that borrows the base's objects (git
alternates): the edits make it look like a newer or an older kernel in the
ways the series must adapt to. ``shape_5_15`` and ``shape_5_10`` make the
shapes of the stable trees people backport to from 6.1.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from kseries.base import bases
from kseries.render.series import RenderedSeries

SELFTESTS = "tools/testing/selftests/kvm"


class Derived:
    """A repository with alternates to a base; edits become one commit on top."""

    def __init__(self, root: Path, base: bases.Base) -> None:
        self.root, self.base = root, base
        self.env = dict(os.environ, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
                        GIT_INDEX_FILE=str(root / "index.tmp"),
                        GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.org",
                        GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.org",
                        GIT_AUTHOR_DATE="1700000000 +0000", GIT_COMMITTER_DATE="1700000000 +0000")
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "--bare")
        (root / "objects" / "info" / "alternates").write_text(f"{base.repo / 'objects'}\n")
        self.git("read-tree", base.commit)
        self.edited: dict[str, str] = {}

    def git(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(["git", "--git-dir", str(self.root), *args], env=self.env,
                              input=stdin, capture_output=True, text=True,
                              check=True).stdout

    def read(self, path: str) -> str:
        if path in self.edited:
            return self.edited[path]
        return self.git("cat-file", "blob", f"{self.base.commit}:{path}")

    def write(self, path: str, text: str) -> None:
        sha = self.git("hash-object", "-w", "--stdin", stdin=text).strip()
        self.git("update-index", "--add", "--cacheinfo", f"100644,{sha},{path}")
        self.edited[path] = text

    def edit(self, path: str, old: str, new: str, count: int = 1) -> None:
        text = self.read(path)
        assert text.count(old) >= count, f"{path}: {old!r} not {count} times in the base"
        self.write(path, text.replace(old, new, -1 if count > 1 else 1))

    def move_dir(self, old: str, new: str) -> None:
        listing = self.git("ls-files", "-s", "--", old)
        info = []
        for line in listing.splitlines():
            meta, path = line.split("\t", 1)
            mode, sha, _ = meta.split()
            info.append(f"0 {'0' * 40}\t{path}")
            info.append(f"{mode} {sha}\t{new}{path[len(old):]}")
        self.git("update-index", "--index-info", stdin="\n".join(info) + "\n")

    def commit(self) -> str:
        tree = self.git("write-tree").strip()
        sha = self.git("commit-tree", tree, "-p", self.base.commit, "-m", "derived").strip()
        self.git("update-ref", "refs/heads/derived", sha)
        return sha


def shape_5_15(d: Derived) -> None:
    """5.15's shapes, on 6.1 (which already has x86_64/ with Makefile and word 15 ending at
    bit 28 with the ``/* "" ... */`` convention): the bus lock capability is a global
    of x86.c declared in asm/kvm_host.h and set by VMX (no field of struct kvm_caps),
    and the nested state caches vmcb12's controls as a whole struct vmcb_control_area
    (there is no struct vmcb_ctrl_area_cached). The tree still builds."""
    d.edit("arch/x86/kvm/x86.h", "\tbool has_bus_lock_exit;\n", "")
    d.edit("arch/x86/include/asm/kvm_host.h", "extern bool __read_mostly enable_apicv;\n",
           "extern bool __read_mostly enable_apicv;\nextern bool kvm_has_bus_lock_exit;\n")
    d.edit("arch/x86/kvm/x86.c", "EXPORT_SYMBOL_GPL(kvm_caps);\n",
           "EXPORT_SYMBOL_GPL(kvm_caps);\n\nbool __read_mostly kvm_has_bus_lock_exit;\n"
           "EXPORT_SYMBOL_GPL(kvm_has_bus_lock_exit);\n")
    d.edit("arch/x86/kvm/x86.c", "kvm_caps.has_bus_lock_exit", "kvm_has_bus_lock_exit", 2)
    d.edit("arch/x86/kvm/vmx/vmx.c", "kvm_caps.has_bus_lock_exit", "kvm_has_bus_lock_exit")
    svm_h = d.read("arch/x86/kvm/svm/svm.h")
    cached = re.search(r"^struct vmcb_ctrl_area_cached \{\n.*?^\};\n\n", svm_h, re.M | re.S)
    assert cached, "6.1's svm.h has struct vmcb_ctrl_area_cached"
    svm_h = svm_h[:cached.start()] + svm_h[cached.end():]
    d.write("arch/x86/kvm/svm/svm.h",
            svm_h.replace("struct vmcb_ctrl_area_cached", "struct vmcb_control_area"))
    d.edit("arch/x86/kvm/svm/nested.c", "struct vmcb_ctrl_area_cached", "struct vmcb_control_area",
           d.read("arch/x86/kvm/svm/nested.c").count("struct vmcb_ctrl_area_cached"))


def shape_5_10(d: Derived) -> None:
    """5.10's shape where it matters first: KVM has no bus lock detection at all (no
    KVM_CAP_X86_BUS_LOCK_EXIT, no bus_lock_detection_enabled; both came with 5.12)."""
    shape_5_15(d)
    d.edit("include/uapi/linux/kvm.h", "#define KVM_CAP_X86_BUS_LOCK_EXIT 193\n", "")
    d.edit("arch/x86/include/asm/kvm_host.h", "\tbool bus_lock_detection_enabled;\n", "")


def git_am_applies(s: RenderedSeries, tmp_path: Path) -> None:
    """The patches apply in order to the derived base (into an index: no 1.7 GB checkout)."""
    env = dict(os.environ, GIT_CONFIG_GLOBAL=os.devnull,
               GIT_INDEX_FILE=str(tmp_path / "apply.index"))
    gd = ["git", "--git-dir", str(s.base.repo)]
    subprocess.run([*gd, "read-tree", s.base.commit], env=env, check=True)
    for patch in s.files[1:]:
        subprocess.run([*gd, "apply", "--cached", str(patch)], env=env, check=True,
                       capture_output=True, text=True)
    tree = subprocess.run([*gd, "write-tree"], env=env, check=True, capture_output=True,
                          text=True).stdout.strip()
    want = subprocess.run(["git", "--git-dir", str(s.repo), "rev-parse", f"{s.tip}^{{tree}}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert tree == want
