from __future__ import annotations

from pathlib import Path

import pytest

from testbench import BenchError, chroot


def test_mirror_comes_from_the_hosts_apt_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLREC_SANDBOX_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: x\n\n"
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm\n")
    assert chroot.host_debian_mirror(tmp_path) == "http://mirror.test/debian"


def test_mirror_from_one_line_sources_and_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLREC_SANDBOX_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://m.test/debian/ sid main\n")
    assert chroot.host_debian_mirror(tmp_path) == "http://m.test/debian/"
    monkeypatch.setenv("CALLREC_SANDBOX_MIRROR", "http://other.test/debian")
    assert chroot.host_debian_mirror(tmp_path) == "http://other.test/debian"


def test_no_mirror_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLREC_SANDBOX_MIRROR", raising=False)
    with pytest.raises(BenchError, match="CALLREC_SANDBOX_MIRROR"):
        chroot.host_debian_mirror(tmp_path)


def test_cache_name_follows_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    before = chroot.inputs_digest()
    monkeypatch.setattr(chroot, "PACKAGES", (*chroot.PACKAGES, "sox"))
    assert chroot.inputs_digest() != before
    monkeypatch.setenv("CALLREC_SANDBOX_CACHE", "/nonexistent/cache")
    assert chroot.chroot_path().parent == Path("/nonexistent/cache")


def test_chroot_user_reads_the_chroots_passwd(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nasterisk:x:101:102::/:/x\n")
    assert chroot.chroot_user(tmp_path, "asterisk") == (101, 102)
    with pytest.raises(BenchError):
        chroot.chroot_user(tmp_path, "nobody")
