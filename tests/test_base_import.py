"""The Debian import path on a small tarball: one commit, fixed identity, a lock.

And the fetch in front of it: a .deb read without dpkg, the pin's suite as
data, and one line (what, from where, what to do) when the archive fails.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from kseries.base import archive, bases
from kseries.errors import KseriesError


def small_tarball(path: Path) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data, mode in [
            ("linux-source-6.99/Makefile", b"VERSION = 6\n", 0o644),
            ("linux-source-6.99/scripts/checkpatch.pl", b"#!/usr/bin/perl\n", 0o755),
            ("linux-source-6.99/.gitignore", b"/*\n!/debian/\n", 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1234
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("linux-source-6.99/link")
        link.type, link.linkname = tarfile.SYMTYPE, "Makefile"
        tar.addfile(link)
    return path


@pytest.fixture
def fake_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_cache: Path
) -> list[int]:
    """Stand in for apt: the tarball is ours, everything after it is the real code."""
    tarball = small_tarball(tmp_path / "linux-source-6.99.tar.xz")
    imports: list[int] = []
    real = bases._import_tarball

    def counting(repo: Path, tb: Path, describe: str) -> str:
        imports.append(1)
        return real(repo, tb, describe)

    monkeypatch.setattr(bases, "_fetch_tarball", lambda pin, label, work: tarball)
    monkeypatch.setattr(bases, "_import_tarball", counting)
    return imports


PIN = bases.DebianPin("6.99", "linux-source-6.99", "6.99.1-1", ("bookworm-security",))


def test_import_is_one_commit_with_fixed_identity(fake_package: list[int]) -> None:
    b = bases.debian_base(PIN)
    log = bases.proc.run(["git", "--git-dir", b.repo, "log", "--format=%an <%ae> %at %s",
                          b.commit]).stdout.strip()
    assert log == ("kseries import <kseries@localhost> 946684800 "
                   "Debian linux-source-6.99 6.99.1-1")
    files = bases.proc.run(["git", "--git-dir", b.repo, "ls-tree", "-r", b.commit]).stdout
    assert "100755 blob" in files and "scripts/checkpatch.pl" in files
    assert "120000 blob" in files and "\tlink" in files
    assert ".gitignore" in files  # the Debian block stays: the base is the tarball as shipped
    again = bases.debian_base(PIN)
    assert again.commit == b.commit and len(fake_package) == 1


def test_same_commit_id_in_another_cache(fake_package: list[int], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    first = bases.debian_base(PIN).commit
    monkeypatch.setenv("KSERIES_CACHE", str(tmp_path / "other-cache"))
    assert bases.debian_base(PIN).commit == first


def test_two_imports_at_once_import_once(fake_package: list[int]) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(bases.debian_base(PIN).commit)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and len(results) == 4
    assert len(fake_package) == 1


def test_without_install_nothing_is_fetched(isolated_cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fetch(*args: object) -> Path:
        raise AssertionError("fetched")
    monkeypatch.setattr(bases, "_fetch_tarball", no_fetch)
    with pytest.raises(KseriesError, match=r"debian:6.99 .* is not imported.*"
                                           r"kseries facts --base debian:6.99"):
        bases.debian_base(PIN, install=False)


def ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def small_deb(path: Path, inner: Path, compression: str = "xz") -> Path:
    """A .deb as dpkg-deb lays it out: debian-binary, control, data (the file at usr/src/)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode=f"w:{compression}") as tar:
        for name in ("./", "./usr/", "./usr/src/"):
            d = tarfile.TarInfo(name)
            d.type = tarfile.DIRTYPE
            tar.addfile(d)
        tar.add(inner, arcname=f"./usr/src/{inner.name}")
    path.write_bytes(b"!<arch>\n" + ar_member("debian-binary", b"2.0\n")
                     + ar_member("control.tar.xz", b"x" * 7)
                     + ar_member(f"data.tar.{compression}", data.getvalue()))
    return path


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_the_tarball_comes_out_of_the_deb_byte_for_byte(tmp_path: Path,
                                                        compression: str) -> None:
    inner = small_tarball(tmp_path / "linux-source-6.99.tar.xz")
    deb = small_deb(tmp_path / "p.deb", inner, compression)
    out = archive.deb_file(deb, "usr/src/linux-source-6.99.tar.xz", tmp_path / "out.tar.xz")
    assert out.read_bytes() == inner.read_bytes()
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(KseriesError, match="holds no usr/src/nothing"):
        archive.deb_file(deb, "usr/src/nothing", tmp_path / "x")
    (tmp_path / "bad.deb").write_bytes(b"PK\x03\x04")
    with pytest.raises(KseriesError, match="not a Debian package"):
        archive.deb_file(tmp_path / "bad.deb", "usr/src/x", tmp_path / "x")


def test_the_pins_name_their_suite(templates: Path) -> None:
    pins = bases.load_pins(templates)
    assert set(pins) == {"6.12", "6.1"}
    for pin in pins.values():
        assert pin.suites[0] == "bookworm-security"  # where `apt-cache madison` found both
        assert "trixie" in pin.suites  # debian:6.X=VERSION also finds trixie's builds


def test_a_pin_without_suite_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bases.toml").write_text('[debian."6.1"]\npackage = "p"\nversion = "1"\n')
    with pytest.raises(KseriesError, match="needs package, version and suite"):
        bases.load_pins(tmp_path)


def test_the_pinned_version_is_fetched_from_its_suite_alone(
        templates: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bases.DebianPin] = []

    def stop(pin: bases.DebianPin, label: str, work: Path) -> Path:
        seen.append(pin)
        raise KseriesError("stop here")
    monkeypatch.setattr(bases, "_fetch_tarball", stop)
    for spec in ("debian:6.12", "debian:6.12=6.12.117-1~deb12u1", "debian:6.12=6.12.117-1"):
        with pytest.raises(KseriesError, match="stop here"):
            bases.resolve(spec, templates)
    assert [p.suites for p in seen[:2]] == [("bookworm-security",)] * 2
    assert seen[2].version == "6.12.117-1" and "trixie" in seen[2].suites


def test_mirrors_from_the_machine_and_the_environment(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie\n\n"
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\n")
    monkeypatch.delenv(archive.MIRROR_ENV, raising=False)
    monkeypatch.delenv(archive.SECURITY_ENV, raising=False)
    assert archive.machine_mirror(etc) == "http://mirror.example/debian"
    assert archive.machine_security_mirror(etc) == "http://sec.example/debian-security"
    snap = "http://snapshot.debian.org/archive/debian/20251201T000000Z"
    monkeypatch.setenv(archive.MIRROR_ENV, snap + "/")
    assert archive.machine_security_mirror(etc) == \
        "http://snapshot.debian.org/archive/debian-security/20251201T000000Z"
    monkeypatch.setenv(archive.SECURITY_ENV, "http://other.example/ds")
    assert archive.machine_security_mirror(etc) == "http://other.example/ds"
    monkeypatch.setattr(archive, "KEYRING", tmp_path / "no-keyring")
    a = archive.Archive("x", ("bookworm", "bookworm-security"), "http://m/debian")
    assert a.sources().splitlines()[::2] == ["deb http://m/debian bookworm main",
                                             "deb http://m/debian-security bookworm-security main"]
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(b"")
    monkeypatch.setattr(archive, "KEYRING", keyring)
    assert a.sources().startswith(f"deb [signed-by={keyring}] http://m/debian bookworm main")


def test_an_unreachable_archive_is_one_line_saying_what_to_do(
        isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real apt-get, against a mirror that is not there: one error, no traceback."""
    if not os.path.exists("/usr/bin/apt-get"):
        pytest.skip("needs Debian's apt-get: run on Debian")
    monkeypatch.setenv(archive.MIRROR_ENV, "http://127.0.0.1:9/debian")
    with pytest.raises(KseriesError) as info:
        bases.debian_base(PIN, label="debian:6.99")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("debian:6.99: cannot reach Debian's archive "
                           "(bookworm-security at http://127.0.0.1:9/debian-security)")
    assert "debian:6.99=VERSION" in text and "--base PATH" in text


def test_a_pin_gone_from_the_archive_is_one_line_with_what_is_there(
        isolated_cache: Path, tmp_path: Path) -> None:
    """The real archive (bookworm-security's lists only), asked for a version it lacks."""
    if not os.path.exists("/usr/bin/apt-get"):
        pytest.skip("needs Debian's apt-get: run on Debian")
    (tmp_path / "bases.toml").write_text(
        '[debian."6.12"]\npackage = "linux-source-6.12"\nversion = "6.12.0-0~deb12u1"\n'
        'suite = "bookworm-security"\n')
    with pytest.raises(KseriesError) as info:
        bases.resolve("debian:6.12", tmp_path)
    text = str(info.value)
    if "cannot reach Debian's archive" in text:
        pytest.skip(f"Debian's archive is out of reach from here: {text}")
    assert "\n" not in text
    assert text.startswith("debian:6.12: cannot fetch linux-source-6.12=6.12.0-0~deb12u1 "
                           "from Debian's archive (bookworm-security at ")
    assert "debian:6.12=VERSION (there: 6.12." in text and "--base PATH" in text
    assert not list((isolated_cache / "bases").glob("*.fetch"))  # nothing left behind
