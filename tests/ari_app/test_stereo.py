"""Stereo recordings (MixMonitor D): when the PBX may make them, how a headerless raw stream is
proven, and the WAV callrec makes of it. The real call is in test_stereo_integration.py."""

from __future__ import annotations

import hashlib
import os
import struct
import wave
from pathlib import Path

import pytest

from ari_app.config import RecordingSettings
from ari_app.rawfile import stereo_refusal, wrap
from ari_app.recorder import Recorder, RecordingFailed
from callrec.manifest import AudioChannel
from tests.fakes import ASTERISK_DIR, CALL_ID, CHANNEL, FakeAmi, flow, mixmonitor_vars, writing
from tests.fakes import recorder as make_recorder

RAW = f"{ASTERISK_DIR}/{CALL_ID}.raw"


@pytest.mark.parametrize(("version", "ok"), [
    ("22.10.1+dfsg+~cs6.15.60671435-1", False),  # Debian's, before the fix
    ("22.11.0", True), ("22.11.0-rc1", True), ("22.12.3", True),
    ("20.20.1", False), ("20.21.0", True), ("21.12.0", False),  # 21 never got it
    ("23.4.1", False), ("23.5.0", True), ("24.0.0", True), ("certified/22.8-cert3", False),
    ("GIT-master-6144b6b", False), ("", False), (None, False),
])
def test_stereo_needs_the_mixmonitor_fix(version: str | None, ok: bool) -> None:
    assert (stereo_refusal(version, on_8k_only_pbx=False) is None) is ok
    assert stereo_refusal(version, on_8k_only_pbx=True) is None  # the admin vouches


def stereo_recorder(tmp_path: Path, version: str = "22.11.0",
                    settings: RecordingSettings | None = None) -> tuple[Recorder, FakeAmi]:
    rec, ami = make_recorder(tmp_path)
    rec.recording = settings or RecordingSettings(stereo=True)
    rec.learn_version(version)
    return rec, ami


async def test_a_stereo_recording_is_a_raw_stream_proven_by_its_writer(tmp_path: Path) -> None:
    rec, ami = stereo_recorder(tmp_path)
    ami.variables.update(mixmonitor_vars(RAW))
    with writing(tmp_path / f"{CALL_ID}.raw", b""):  # created empty when the thread starts
        proof = await rec.start(CALL_ID, CHANNEL, stereo=True)
    assert ami.actions[0]["File"] == RAW and ami.actions[0]["Options"].endswith("D")
    record = proof.record()
    assert record.channels == [AudioChannel.CUSTOMER, AudioChannel.AGENT]
    assert record.path == str(tmp_path / f"{CALL_ID}.wav") and record.stereo_refused is None


async def test_a_raw_stream_nobody_writes_is_not_proven(tmp_path: Path) -> None:
    rec, ami = stereo_recorder(tmp_path)
    rec.verify_timeout_s = 0.1
    ami.variables.update(mixmonitor_vars(RAW))
    (tmp_path / f"{CALL_ID}.raw").write_bytes(b"")  # there, but closed
    with pytest.raises(RecordingFailed):
        await rec.start(CALL_ID, CHANNEL, stereo=True)
    assert ami.actions[-1] == {"Action": "StopMixMonitor", "Channel": CHANNEL,
                               "MixMonitorID": "0x55d1"}


async def test_an_old_pbx_records_mono_and_says_why(tmp_path: Path) -> None:
    rec, ami = stereo_recorder(tmp_path, version="22.10.1+dfsg+~cs6.15.60671435-1")
    ami.variables.update(mixmonitor_vars(f"{ASTERISK_DIR}/{CALL_ID}.wav"))
    with writing(tmp_path / f"{CALL_ID}.wav"):
        proof = await rec.start(CALL_ID, CHANNEL, stereo=True)
    sent = ami.actions[0]
    assert sent["Options"] == "i(CALLREC_MIXMON_ID)" and sent["File"].endswith(".wav")
    record = proof.record()
    assert record.channels == [AudioChannel.MIX]
    assert record.stereo_refused is not None and "22.11.0" in record.stereo_refused


def frames(n: int) -> bytes:
    """n stereo frames: the customer counts up on the left, the agent down on the right."""
    return b"".join(struct.pack("<hh", i, -i) for i in range(n))


@pytest.mark.parametrize("torn", [0, 1, 3])
def test_the_wav_is_the_raw_stream_with_a_header(tmp_path: Path, torn: int) -> None:
    raw, wav = tmp_path / "c.raw", tmp_path / "c.wav"
    body = frames(8000) + b"\x7f" * torn  # a writer killed mid-frame leaves a torn one
    raw.write_bytes(body)
    stream = wrap(raw, wav)
    assert (stream.size, stream.sha256, stream.torn) == (
        len(body), hashlib.sha256(body).hexdigest(), torn)
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.readframes(w.getnframes()) == frames(8000)
    assert wav.read_bytes()[44:] == frames(8000)  # docs/auditor.md: tail -c +45 | sha256sum
    assert raw.read_bytes() == body  # kept until the WAV is archived
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert wrap(raw, wav) == stream  # done again after a crash: the same file


async def test_a_closed_raw_stream_is_described_by_its_wav(tmp_path: Path) -> None:
    rec, ami = stereo_recorder(tmp_path)
    ami.variables.update(mixmonitor_vars(RAW))
    raw = tmp_path / f"{CALL_ID}.raw"
    with writing(raw, b"") as fd:
        proof = await rec.start(CALL_ID, CHANNEL, stereo=True)
        os.write(fd, frames(16000) + b"\x01")  # 2 s, and a torn frame: Asterisk killed
    record = proof.record()
    await rec.wait_closed(proof.file, record, timeout_s=5)
    wav = tmp_path / f"{CALL_ID}.wav"
    assert record.duration_s == 2.0 and record.size == wav.stat().st_size
    assert record.sha256 == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert record.source_size == raw.stat().st_size
    assert record.source_sha256 == hashlib.sha256(raw.read_bytes()).hexdigest()


async def test_a_raw_stream_an_earlier_run_started_is_taken_on(tmp_path: Path) -> None:
    rec, ami = stereo_recorder(tmp_path)
    ami.variables.update(mixmonitor_vars(RAW))
    with writing(tmp_path / f"{CALL_ID}.raw", b""):
        proof = await rec.resume(CHANNEL)
    assert proof is not None and proof.file.stereo and proof.file.call_id == CALL_ID


@pytest.mark.parametrize(("args", "route", "queue", "default", "stereo"), [
    ({}, None, None, True, True),
    ({}, None, False, True, False),  # the queue's rule over the default
    ({}, True, False, False, True),  # the route over the queue
    ({"stereo": "no"}, True, True, True, False),  # the door's argument over all
    ({"stereo": "maybe"}, None, None, True, True),  # not understood: the next one says
])
def test_the_most_specific_setting_says_stereo(args: dict[str, str], route: bool | None,
                                               queue: bool | None, default: bool,
                                               stereo: bool) -> None:
    f = flow(routes={"9001": {"context": "agents", "queue": "support", "stereo": route}},
             queues={"support": {"stereo": queue}}, recording={"stereo": default})
    assert f.plan("9001", args, "ja").stereo is stereo
