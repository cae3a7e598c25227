"""Taking on a recording an earlier run started (Recorder.resume): kept only while it verifies,
stopped otherwise. The kill -9 integration test covers the kept case against the real PBX. And a
MixMonitor that was asked for but not verified is stopped, even when AMI was what failed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest

from ari_app.ami import AmiClient, AmiError, AmiNotConnected, AmiRefused
from ari_app.closewatch import CloseWatch
from ari_app.config import SpoolSettings
from ari_app.recorder import ID_VAR, Recorder, RecordingFailed

CALL_ID = "20261123T164052Z-c1005ac3d30b"
CHANNEL = "PJSIP/trunk-00000001"
WAV_HEADER = b"RIFF\x24\x00\x00\x00WAVEfmt "


class FakeAmi:
    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = variables
        self.actions: list[dict[str, str]] = []

    async def getvar(self, channel: str, variable: str) -> str:
        return self.variables.get(variable, "")

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        self.actions.append(fields)
        return {"Response": "Success"}


class FlakyAmi(FakeAmi):
    """Its next calls fail with these errors, one each; MixMonitor's reply never comes."""

    def __init__(self, variables: dict[str, str], failures: list[AmiError]) -> None:
        super().__init__(variables)
        self.failures = failures

    def _next(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def getvar(self, channel: str, variable: str) -> str:
        self._next()
        return await super().getvar(channel, variable)

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        self._next()
        return await super().action(fields, timeout)

    async def mixmonitor(self, channel: str, file: str, options: str) -> str:
        raise AmiError("AMI MixMonitor timed out after 2.0 s")


def recorder(tmp_path: Path, variables: dict[str, str],
             ami: FakeAmi | None = None) -> tuple[Recorder, FakeAmi]:
    ami = ami or FakeAmi(variables)
    spool = SpoolSettings(local_dir=tmp_path, asterisk_dir=Path("/var/spool/asterisk/callrec"))
    return Recorder(cast(AmiClient, ami), spool, 1.0, CloseWatch(tmp_path)), ami


def mixmonitor(file: str) -> dict[str, str]:
    return {ID_VAR: "0x55d1", "MIXMONITOR(0x55d1,filename)": file}


async def test_a_running_recording_of_ours_is_kept(tmp_path: Path) -> None:
    (tmp_path / f"{CALL_ID}.wav").write_bytes(WAV_HEADER)
    rec, ami = recorder(tmp_path, mixmonitor(f"/var/spool/asterisk/callrec/{CALL_ID}.wav"))
    # Held open for writing, like MixMonitor's (the lease probe sees a writer).
    fd = os.open(tmp_path / f"{CALL_ID}.wav", os.O_WRONLY)
    try:
        active = await rec.resume(CHANNEL)
    finally:
        os.close(fd)
    assert active is not None and active.call_id == CALL_ID and active.mixmonitor_id == "0x55d1"
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
    assert await rec.stop(CHANNEL, "") and away.actions == [STOP_77]
    gone = FlakyAmi({ID_VAR: "0x77"}, [AmiRefused("No such channel")])
    rec, _ = recorder(tmp_path, {}, gone)
    assert await rec.stop(CHANNEL, "") and gone.actions == []  # nothing left to record
    never = FlakyAmi({ID_VAR: "0x77"}, [AmiNotConnected("down")] * 100)
    rec, _ = recorder(tmp_path, {}, never)
    assert not await rec.stop(CHANNEL, "", patience_s=0.3)
