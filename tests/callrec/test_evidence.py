"""Sealing at the source (callrec/evidence/): keys, signatures, the chain's log."""

from __future__ import annotations

import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callrec.evidence.chain import Chain, SpoolWriter
from callrec.evidence.keys import HostKey
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import CallManifest, Policy, RecordingStatus
from callrec.signing import decode_sig, load_public, sha256_hex, signature_ok


def manifest(n: int) -> CallManifest:
    return CallManifest(call_id=f"20261201T000000Z-{n:012x}", asterisk_uniqueid=f"1.{n}",
                        policy=Policy.OPTIONAL, status=RecordingStatus.UNRECORDED,
                        outcome="completed", entered_at=datetime(2026, 12, 1, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path) -> EvidenceSettings:
    return EvidenceSettings(dir=tmp_path / "evidence", host="pbx1")


def test_the_key_is_made_once_private_and_its_signature_verifies_with_openssl(
        settings: EvidenceSettings, tmp_path: Path) -> None:
    key = HostKey(settings)
    again = HostKey(settings)
    assert key.signer == again.signer and key.signer.startswith("pbx1/")
    mode = stat.S_IMODE((settings.dir / "keys" / f"{key.key_id}.pem").stat().st_mode)
    assert mode == 0o600
    data = b'{"call_id": "x"}\n'
    (tmp_path / "m.json").write_bytes(data)
    (tmp_path / "m.sig").write_bytes(key.sign(data))
    (tmp_path / "k.pem").write_bytes(key.public_keys()[key.key_id])
    checked = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "k.pem",
                              "-rawin", "-in", "m.json", "-sigfile", "m.sig"], cwd=tmp_path,
                             capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr
    (tmp_path / "m.json").write_bytes(data.replace(b"x", b"y"))
    assert subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "k.pem",
                           "-rawin", "-in", "m.json", "-sigfile", "m.sig"], cwd=tmp_path,
                          capture_output=True, check=False).returncode != 0


def test_rotation_is_followed_by_a_running_writer_and_old_keys_stay(
        settings: EvidenceSettings, tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, settings)
    writer.write(manifest(1))
    old = CallManifest.read(tmp_path / f"{manifest(1).call_id}.json").chain
    new_id = HostKey(settings).rotate()  # another process (callrec keys rotate)
    writer.write(manifest(2))
    new = CallManifest.read(tmp_path / f"{manifest(2).call_id}.json").chain
    assert old is not None and new is not None
    assert old.key != new.key and new.key == f"pbx1/{new_id}"
    assert new.prev == sha256_hex((tmp_path / f"{manifest(1).call_id}.json").read_bytes())
    publics = HostKey(settings).public_keys()
    assert set(publics) == {old.key.split("/")[1], new_id}
    for n, link in ((1, old), (2, new)):
        path = tmp_path / f"{manifest(n).call_id}.json"
        signature = decode_sig((tmp_path / f"{path.name}.sig").read_text().strip())
        assert signature is not None
        assert signature_ok(load_public(publics[link.key.split("/")[1]]), path.read_bytes(),
                            signature)


def test_a_torn_last_line_is_dropped_and_a_crash_before_the_log_is_recovered(
        settings: EvidenceSettings, tmp_path: Path) -> None:
    writer = SpoolWriter(tmp_path, settings)
    for n in range(1, 4):
        writer.write(manifest(n))
    chain = Chain(settings.dir, "pbx1")
    with chain.log.open("ab") as f:
        f.write(b"4 deadbeef")  # a crash mid-append
    tip = chain.tip()
    assert tip is not None and tip.seq == 3
    # A crash after the manifest's rename, before its log line: sealed in the spool only.
    writer.write(manifest(4))
    log = chain.log.read_bytes()
    assert b"deadbeef" not in log  # the torn line went before the next append
    chain.log.write_bytes(log[:log.rstrip(b"\n").rfind(b"\n") + 1])
    assert [e.seq for e in chain.entries()] == [1, 2, 3]
    assert chain.recover(tmp_path) == 1
    assert [e.seq for e in chain.entries()] == [1, 2, 3, 4]
    assert chain.recover(tmp_path) == 0
    writer.write(manifest(5))
    written = CallManifest.read(tmp_path / f"{manifest(5).call_id}.json").chain
    assert written is not None and written.seq == 5


def test_entries_after_a_point_read_only_the_tail(settings: EvidenceSettings,
                                                  tmp_path: Path) -> None:
    chain = Chain(settings.dir, "pbx1")
    key = HostKey(settings)
    for n in range(1, 1501):  # > 64 KiB of log: the backward read crosses blocks
        chain.seal(key, manifest(n), lambda data, sig: None)
    assert [e.seq for e in chain.entries(1490)] == list(range(1491, 1501))
    assert [e.seq for e in chain.entries(10, 20)] == list(range(11, 21))
    assert len(chain.entries()) == 1500
    assert [e.prev for e in chain.entries(1, 2)] == [chain.entries(0, 1)[0].sha256]
