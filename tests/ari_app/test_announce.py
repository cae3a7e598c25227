"""A party a transfer brings into a call hears the notice only while the call's recording is
verified and still running (ari_app/flow.py, announce_to_party)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ari_app.call import Call
from ari_app.config import Route
from ari_app.flow import Plan, PlayResult
from ari_app.recorder import ActiveRecording
from callrec.manifest import Policy, RecordingStatus
from tests.ari_app.test_plan import flow

NEW_PARTY = "PJSIP/trunk2-00000009"


class FakeDoor:
    def __init__(self) -> None:
        self.played: list[str] = []
        self.vars: dict[str, str] = {}

    async def answer(self) -> None: ...

    async def follow(self) -> None: ...

    async def play(self, prompt: str, language: str) -> PlayResult:
        self.played.append(prompt)
        now = datetime.now(UTC)
        return PlayResult(now, now, True)

    async def set_var(self, name: str, value: str) -> None:
        self.vars[name] = value

    async def hangup(self) -> None: ...

    async def proceed(self, route: Route | None) -> None: ...


def host_call(spool: Path, status: RecordingStatus) -> Call:
    call = Call({"id": "1.1", "name": "PJSIP/trunk-00000001"}, "stasis", Policy.FORCE)
    now = datetime.now(UTC)
    call.status = status
    call.active = ActiveRecording(call.call_id, str(spool / "r.wav"), spool / "r.wav", "mm1",
                                  now, now)
    return call


@pytest.mark.parametrize(("status", "writing", "told"), [
    (RecordingStatus.RECORDED, True, True),
    (RecordingStatus.INTERRUPTED, True, False),  # stopped mid-call: telling would be a lie
    (RecordingStatus.RECORDED, False, False),  # MixMonitor closed the file already
])
async def test_new_party_told_only_while_recorded(tmp_path: Path, status: RecordingStatus,
                                                  writing: bool, told: bool) -> None:
    f = flow(spool={"asterisk_dir": str(tmp_path)})
    call = host_call(tmp_path, status)
    with (tmp_path / "r.wav").open("wb") as writer:
        writer.write(b"RIFF")
        if not writing:
            writer.close()
        door = FakeDoor()
        await f.announce_to_party(call, door, Plan(Policy.FORCE, "ja", None), NEW_PARTY,
                                  "0398765432")
    leg = call.leg(NEW_PARTY)
    assert leg.endpoint == "0398765432"
    assert door.played == (["callrec/notice"] if told else [])
    assert door.vars["CALLREC_STATUS"] == ("recorded" if told else "unrecorded")
    assert (leg.notice is not None) is told
