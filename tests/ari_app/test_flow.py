"""The flow's ordering with fakes: what goes to Asterisk together, and what must wait.

The integration tests prove the flow against the real PBX; these pin the order that honesty
depends on (the notice only after a verified recording and the answer), which a real PBX on an
idle box would satisfy by luck.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from ari_app.ami import AmiClient
from ari_app.call import Call
from ari_app.config import AmiSettings, AriAppSettings, Route
from ari_app.flow import Flow, Plan, PlayResult, together
from ari_app.recorder import ActiveRecording, Recorder, RecordingFailed
from callrec.manifest import Policy, RecordingStatus


class Steps:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.recording_started = asyncio.Event()


class FakeRecorder:
    def __init__(self, steps: Steps, verify_s: float, fail: bool = False) -> None:
        self.steps, self.verify_s, self.fail = steps, verify_s, fail

    async def start(self, call_id: str, channel: str) -> ActiveRecording:
        self.steps.log.append("mixmonitor")
        self.steps.recording_started.set()
        await asyncio.sleep(self.verify_s)
        if self.fail:
            self.steps.log.append("unverified")
            raise RecordingFailed("mixmonitor_unverified", "no WAV header")
        self.steps.log.append("verified")
        now = datetime.now(UTC)
        return ActiveRecording(call_id, "/a.wav", Path("/a.wav"), "id", now, now)


class FakeDoor:
    def __init__(self, steps: Steps, answer_s: float) -> None:
        self.steps, self.answer_s = steps, answer_s

    async def answer(self) -> None:
        await asyncio.sleep(self.answer_s)
        self.steps.log.append("answered")

    async def follow(self) -> None:
        # Waits for the recording to have been asked for: a flow that started MixMonitor only
        # after this bookkeeping would never get here in time.
        await asyncio.wait_for(self.steps.recording_started.wait(), 1.0)
        self.steps.log.append("follow")

    async def play(self, prompt: str, language: str) -> PlayResult:
        self.steps.log.append(f"play {prompt}")
        now = datetime.now(UTC)
        return PlayResult(now, now, True)

    async def set_var(self, name: str, value: str) -> None:
        self.steps.log.append(f"{name}={value}")

    async def hangup(self) -> None:
        self.steps.log.append("hangup")

    async def proceed(self, route: Route | None) -> None:
        self.steps.log.append("proceed")


def setup(policy: Policy, verify_s: float, answer_s: float, fail: bool = False,
          ) -> tuple[Flow, Call, FakeDoor, Plan, Steps]:
    steps = Steps()
    settings = AriAppSettings(policy=policy)
    ami = AmiClient(AmiSettings())
    ami.connected = True
    recorder = cast(Recorder, FakeRecorder(steps, verify_s, fail))
    flow = Flow(settings, ami, recorder, {"callrec/notice": {"en"}, "callrec/unavailable": {"en"}})
    call = Call({"id": "1.1", "name": "PJSIP/trunk-00000001"}, "stasis", policy)
    plan = Plan(policy, "en", Route(context="agents"))
    return flow, call, FakeDoor(steps, answer_s), plan, steps


@pytest.mark.parametrize(("verify_s", "answer_s"), [(0.05, 0.0), (0.0, 0.05)])
async def test_notice_waits_for_the_verified_recording_and_the_answer(
        verify_s: float, answer_s: float) -> None:
    flow, call, door, plan, steps = setup(Policy.OPTIONAL, verify_s, answer_s)
    await flow.run(call, door, plan)
    play = steps.log.index("play callrec/notice")
    assert steps.log.index("verified") < play and steps.log.index("answered") < play
    assert steps.log[0] == "answered"  # the caller's 200 OK is not held up by anything
    assert steps.log.index("CALLREC_ID=" + call.call_id) < steps.log.index("proceed")
    assert steps.log.index("CALLREC_STATUS=recorded") < steps.log.index("proceed")
    assert steps.log[-1] == "proceed" and call.status is RecordingStatus.RECORDED
    assert call.notice.completed and call.answered_at is not None


async def test_unverified_recording_means_no_notice_even_when_answered_first() -> None:
    flow, call, door, plan, steps = setup(Policy.FORCE, verify_s=0.05, answer_s=0.0, fail=True)
    await flow.run(call, door, plan)
    assert "play callrec/notice" not in steps.log
    assert steps.log[-2:] == ["play callrec/unavailable", "hangup"]
    assert call.status is RecordingStatus.UNRECORDED
    assert call.status_reason == "mixmonitor_unverified"


async def test_a_failed_step_beside_the_recording_still_keeps_it() -> None:
    flow, call, door, plan, steps = setup(Policy.OPTIONAL, verify_s=0.05, answer_s=0.0)

    async def refused(name: str, value: str) -> None:
        raise RuntimeError("caller gone")

    door.set_var = refused  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await flow.run(call, door, plan)
    assert call.active is not None and call.status is RecordingStatus.RECORDED
    assert not any(step.startswith("play") for step in steps.log)


async def test_never_records_nothing() -> None:
    flow, call, door, plan, steps = setup(Policy.NEVER, verify_s=0.0, answer_s=0.0)
    door.steps.recording_started.set()  # nothing will ask for a recording
    await flow.run(call, door, plan)
    assert "mixmonitor" not in steps.log and not any(s.startswith("play") for s in steps.log)
    assert "CALLREC_STATUS=unrecorded" in steps.log and steps.log[-1] == "proceed"


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
        raise RecordingFailed("spool_full", "0 MB free")

    results = await together(asyncio.sleep(0, "a"), refused(), keep=RecordingFailed)
    assert results[0] == "a" and isinstance(results[1], RecordingFailed)
