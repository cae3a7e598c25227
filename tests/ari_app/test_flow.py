"""The flow's ordering with fakes: what goes to Asterisk together, and what must wait.

The integration tests prove the flow against the real PBX; these pin the order that honesty
depends on (the notice only after a verified recording and the answer), which a real PBX on an
idle box would satisfy by luck.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import cast

import pytest

from ari_app.ami import AmiClient
from ari_app.call import Call
from ari_app.closewatch import CloseWatch
from ari_app.config import SpoolSettings
from ari_app.flow import Flow, Plan, together
from ari_app.recorder import Recorder, RecordingFailed, VerifiedRecording
from callrec.manifest import Policy, RecordingStatus
from callrec.reasons import StatusReason
from tests.fakes import ASTERISK_DIR, FakeAmi, StepDoor, flow, mixmonitor_vars, writing


class SlowRecorder(Recorder):
    """The real recorder and its rule, with MixMonitor taking ``verify_s`` to verify."""

    def __init__(self, door: StepDoor, spool: Path, verify_s: float, fail: bool) -> None:
        self.fake_ami = FakeAmi()
        super().__init__(cast(AmiClient, self.fake_ami),
                         SpoolSettings(local_dir=spool, asterisk_dir=Path(ASTERISK_DIR)), 1.0,
                         CloseWatch(spool))
        self.door, self.verify_s, self.fail = door, verify_s, fail

    async def start(self, call_id: str, channel: str, stereo: bool = False,
                    ) -> VerifiedRecording:
        self.door.log.append("mixmonitor")
        self.door.recording_asked.set()
        await asyncio.sleep(self.verify_s)
        if self.fail:
            self.door.log.append("unverified")
            raise RecordingFailed(StatusReason.MIXMONITOR_UNVERIFIED, "no WAV header")
        self.fake_ami.variables.update(mixmonitor_vars(self.paths(call_id)[0]))
        proof = await super().start(call_id, channel, stereo)
        self.door.log.append("verified")
        return proof


class OrderDoor(StepDoor):
    async def follow(self) -> None:
        # Waits for the recording to have been asked for: a flow that started MixMonitor only
        # after this bookkeeping would never get here in time.
        await asyncio.wait_for(self.recording_asked.wait(), 1.0)
        await super().follow()


def setup(spool: Path, policy: Policy, verify_s: float, answer_s: float, fail: bool = False,
          ) -> tuple[Flow, Call, OrderDoor, Plan]:
    door = OrderDoor(answer_s)
    rec = SlowRecorder(door, spool, verify_s, fail)
    f = flow(recorder=rec, policy=policy.value)
    call = Call.from_stasis({"id": "1.1", "name": "PJSIP/trunk-00000001"}, policy)
    return f, call, door, Plan(policy, "en", f.settings.routes["9001"])


async def run(f: Flow, call: Call, door: OrderDoor, plan: Plan, spool: Path) -> None:
    """The flow, with the call's file held open for writing as MixMonitor holds it."""
    with writing(spool / f"{call.call_id}.wav"):
        await f.run(call, door, plan)


@pytest.mark.parametrize(("verify_s", "answer_s"), [(0.05, 0.0), (0.0, 0.05)])
async def test_notice_waits_for_the_verified_recording_and_the_answer(
        tmp_path: Path, verify_s: float, answer_s: float) -> None:
    f, call, door, plan = setup(tmp_path, Policy.OPTIONAL, verify_s, answer_s)
    await run(f, call, door, plan, tmp_path)
    log = door.log
    play = log.index("play callrec/notice")
    assert log.index("verified") < play and log.index("answered") < play
    assert log[0] == "answered"  # the caller's 200 OK is not held up by anything
    assert log.index("CALLREC_ID=" + call.call_id) < log.index("proceed")
    assert log.index("CALLREC_STATUS=recorded") < log.index("proceed")
    assert log[-1] == "proceed" and call.status is RecordingStatus.RECORDED
    assert call.notice.completed and call.answered_at is not None


async def test_unverified_recording_means_no_notice_even_when_answered_first(
        tmp_path: Path) -> None:
    f, call, door, plan = setup(tmp_path, Policy.FORCE, verify_s=0.05, answer_s=0.0, fail=True)
    await run(f, call, door, plan, tmp_path)
    assert "play callrec/notice" not in door.log
    assert door.log[-2:] == ["play callrec/unavailable", "hangup"]
    assert call.status is RecordingStatus.UNRECORDED
    assert call.status_reason is StatusReason.MIXMONITOR_UNVERIFIED


async def test_a_recording_that_stops_before_the_notice_is_not_announced(
        tmp_path: Path) -> None:
    """Proven, then its writer gone before the notice: the gate says no, the call follows its
    policy unrecorded, and the MixMonitor is stopped by its ID."""
    f, call, door, plan = setup(tmp_path, Policy.OPTIONAL, verify_s=0.0, answer_s=0.0)
    rec = cast(SlowRecorder, f.recorder)
    original_start = rec.start

    async def start_then_close(call_id: str, channel: str, stereo: bool = False,
                               ) -> VerifiedRecording:
        proof = await original_start(call_id, channel, stereo)
        os.close(held[0])
        return proof

    rec.start = start_then_close  # type: ignore[method-assign]
    with writing(tmp_path / f"{call.call_id}.wav") as fd:
        held = [fd]
        await f.run(call, door, plan)
    assert "play callrec/notice" not in door.log and "CALLREC_STATUS=recorded" not in door.log
    assert call.status is RecordingStatus.UNRECORDED and call.file is None
    assert call.status_reason is StatusReason.RECORDING_STOPPED_BEFORE_NOTICE
    assert door.log[-1] == "proceed"
    assert {"Action": "StopMixMonitor", "Channel": call.channel_name,
            "MixMonitorID": "0x55d1"} in rec.fake_ami.actions


async def test_a_failed_step_beside_the_recording_still_keeps_it(tmp_path: Path) -> None:
    f, call, door, plan = setup(tmp_path, Policy.OPTIONAL, verify_s=0.05, answer_s=0.0)

    async def refused(name: str, value: str) -> None:
        raise RuntimeError("caller gone")

    door.set_var = refused  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await run(f, call, door, plan, tmp_path)
    assert call.file is not None and call.status is RecordingStatus.RECORDED
    assert not any(step.startswith("play") for step in door.log)


async def test_the_notice_is_kept_when_the_variable_beside_it_fails(tmp_path: Path) -> None:
    """Asterisk dying in the notice: CALLREC_STATUS may fail, the notice played is on record."""
    f, call, door, plan = setup(tmp_path, Policy.OPTIONAL, verify_s=0.0, answer_s=0.0)
    set_var = door.set_var

    async def status_fails(name: str, value: str) -> None:
        if name == "CALLREC_STATUS":
            raise RuntimeError("channel gone")
        await set_var(name, value)

    door.set_var = status_fails  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await run(f, call, door, plan, tmp_path)
    assert call.notice.played and door.played == ["callrec/notice"]


async def test_never_records_nothing(tmp_path: Path) -> None:
    f, call, door, plan = setup(tmp_path, Policy.NEVER, verify_s=0.0, answer_s=0.0)
    door.recording_asked.set()  # nothing will ask for a recording
    await run(f, call, door, plan, tmp_path)
    assert "mixmonitor" not in door.log and door.played == []
    assert "CALLREC_STATUS=unrecorded" in door.log and door.log[-1] == "proceed"


async def test_a_did_without_a_route_is_a_failed_call_not_an_abandoned_one(
        tmp_path: Path) -> None:
    f, call, door, _ = setup(tmp_path, Policy.OPTIONAL, verify_s=0.0, answer_s=0.0)
    door.recording_asked.set()  # nothing will ask for a recording
    await run(f, call, door, Plan(Policy.OPTIONAL, "en", None), tmp_path)
    assert "follow" in door.log  # its prompt's end and its hang-up must reach callrec
    assert "mixmonitor" not in door.log and "play callrec/notice" not in door.log
    assert door.log[-2:] == ["play callrec/unavailable", "hangup"]
    m = call.manifest()
    assert (m.status, m.status_reason, m.outcome) == ("unrecorded", "no_route", "failed")


async def test_together_lets_every_step_finish_before_raising() -> None:
    finished: list[str] = []

    async def fails() -> None:
        raise ValueError("first")

    async def slow() -> str:
        await asyncio.sleep(0.05)
        finished.append("slow")
        return "done"

    with pytest.raises(ValueError, match="first"):
        await together(fails(), slow())
    assert finished == ["slow"]


async def test_together_returns_kept_exceptions_in_place() -> None:
    async def refused() -> None:
        raise RecordingFailed(StatusReason.SPOOL_FULL, "0 MB free")

    results = await together(asyncio.sleep(0, "a"), refused(), keep=RecordingFailed)
    assert results[0] == "a" and isinstance(results[1], RecordingFailed)
