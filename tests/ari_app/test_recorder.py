"""Taking on a recording an earlier run started (Recorder.resume): kept only while it verifies,
stopped otherwise. The kill -9 integration test covers the kept case against the real PBX. And a
MixMonitor that was asked for but not verified is stopped, even when AMI was what failed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ari_app.ami import AmiError, AmiNotConnected, AmiRefused
from ari_app.recorder import ID_VAR, Recorder, RecordingFailed, now
from tests.fakes import CALL_ID, CHANNEL, FakeAmi, FlakyAmi, asterisk_wav, writing
from tests.fakes import mixmonitor_vars as mixmonitor
from tests.fakes import recorder as make_recorder

WAV_HEADER = asterisk_wav(None)


def recorder(tmp_path: Path, variables: dict[str, str],
             ami: FakeAmi | None = None) -> tuple[Recorder, FakeAmi]:
    return make_recorder(tmp_path, ami or FakeAmi(variables))


async def test_a_running_recording_of_ours_is_kept(tmp_path: Path) -> None:
    (tmp_path / f"{CALL_ID}.wav").write_bytes(WAV_HEADER)
    rec, ami = recorder(tmp_path, mixmonitor(f"/var/spool/asterisk/callrec/{CALL_ID}.wav"))
    # Held open for writing, like MixMonitor's (the lease probe sees a writer).
    fd = os.open(tmp_path / f"{CALL_ID}.wav", os.O_WRONLY)
    try:
        proof = await rec.resume(CHANNEL)
    finally:
        os.close(fd)
    assert proof is not None and proof.file.call_id == CALL_ID
    assert proof.file.mixmonitor_id == "0x55d1"
    assert ami.actions == []


async def test_no_recording_on_the_channel_means_a_new_one(tmp_path: Path) -> None:
    rec, ami = recorder(tmp_path, {})
    assert await rec.resume(CHANNEL) is None and ami.actions == []


@pytest.mark.parametrize("file", [
    "/tmp/elsewhere.wav",  # not our spool
    "/var/spool/asterisk/callrec/../../etc/x.wav",  # not one of our names
    f"/var/spool/asterisk/callrec/{CALL_ID}.wav",  # ours, but no header on disk
    "",  # no datastore: MixMonitor gone
])
async def test_an_unverifiable_recording_is_stopped(tmp_path: Path, file: str) -> None:
    rec, ami = recorder(tmp_path, mixmonitor(file))
    assert await rec.resume(CHANNEL) is None
    assert ami.actions == [{"Action": "StopMixMonitor", "Channel": CHANNEL,
                            "MixMonitorID": "0x55d1"}]


async def test_a_closed_recording_is_not_taken_on(tmp_path: Path) -> None:
    (tmp_path / f"{CALL_ID}.wav").write_bytes(WAV_HEADER)  # nobody writes it any more
    rec, ami = recorder(tmp_path, mixmonitor(f"/var/spool/asterisk/callrec/{CALL_ID}.wav"))
    assert await rec.resume(CHANNEL) is None
    assert [a["Action"] for a in ami.actions] == ["StopMixMonitor"]


STOP_77 = {"Action": "StopMixMonitor", "Channel": CHANNEL, "MixMonitorID": "0x77"}


async def test_a_mixmonitor_whose_reply_never_came_is_stopped_by_its_id(tmp_path: Path) -> None:
    """The action may have reached Asterisk: the ID i() set on the channel names what to stop."""
    rec, ami = recorder(tmp_path, {}, FlakyAmi({ID_VAR: "0x77"}, []))
    with pytest.raises(RecordingFailed, match="mixmonitor_refused"):
        await rec.start(CALL_ID, CHANNEL)
    assert ami.actions == [STOP_77]
    none_started = FlakyAmi({}, [])
    rec, _ = recorder(tmp_path, {}, none_started)
    with pytest.raises(RecordingFailed):
        await rec.start(CALL_ID, CHANNEL)
    assert none_started.actions == []  # never a StopMixMonitor without an ID


async def test_stopping_waits_for_ami_to_come_back_but_not_forever(tmp_path: Path) -> None:
    away = FlakyAmi({ID_VAR: "0x77"}, [AmiNotConnected("down"), AmiError("timed out")])
    rec, _ = recorder(tmp_path, {}, away)
    assert await rec.stop_unverified(CHANNEL, "") and away.actions == [STOP_77]
    gone = FlakyAmi({ID_VAR: "0x77"}, [AmiRefused("No such channel")])
    rec, _ = recorder(tmp_path, {}, gone)
    assert await rec.stop_unverified(CHANNEL, "") and gone.actions == []  # nothing left to record
    never = FlakyAmi({ID_VAR: "0x77"}, [AmiNotConnected("down")] * 100)
    rec, _ = recorder(tmp_path, {}, never)
    assert not await rec.stop_unverified(CHANNEL, "", patience_s=0.3)


async def test_adopted_recording_is_proven_again_by_the_same_rule(tmp_path: Path) -> None:
    """After a restart a journaled recording is proven again without ever being stopped: its
    caller was told already; a recording that no longer proves just gets no new prompts."""
    rec, ami = recorder(tmp_path, mixmonitor(f"/var/spool/asterisk/callrec/{CALL_ID}.wav"))
    file = rec.file_of(CALL_ID, "0x55d1", now())
    with writing(file.local_path):
        proof = await rec.reprove(CHANNEL, file)
    assert proof is not None and proof.file == file
    assert await rec.reprove(CHANNEL, file) is None  # closed since
    assert ami.actions == []
