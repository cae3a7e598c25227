"""The honesty gates, pinned one by one: each test fails if its check is removed.

- only Recorder's rule makes a VerifiedRecording, and only a VerifiedRecording makes a call
  recorded (Call.mark_recorded);
- every prompt that says the call is recorded goes through Announcer.announce, which checks right
  before playing that the recording still runs;
- a party a transfer brings in is told only while the call's recording is proven and running.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ari_app.announce import Announcer, NotRecording
from ari_app.call import Call
from ari_app.flow import Plan
from ari_app.recorder import RecordingFile, VerifiedRecording
from callrec.manifest import Policy, RecordingStatus
from callrec.reasons import StatusReason
from tests.fakes import CALL_ID, StepDoor, flow, proven, recorder, writing

NEW_PARTY = "PJSIP/trunk2-00000009"


def host_call() -> Call:
    return Call.from_stasis({"id": "1.1", "name": "PJSIP/trunk-00000001"}, Policy.FORCE)


def test_only_the_rule_makes_a_proof(tmp_path: Path) -> None:
    file = RecordingFile(CALL_ID, "/a.wav", tmp_path / "a.wav", "mm1", datetime.now(UTC))
    with pytest.raises(TypeError, match="proof rule"):
        VerifiedRecording(file, datetime.now(UTC), object())


async def test_a_proof_cannot_be_forged_by_copying(tmp_path: Path) -> None:
    rec, ami = recorder(tmp_path)
    with writing(rec.paths(CALL_ID)[1]):
        proof = await proven(rec, ami)
    copy = dataclasses.replace(proof)  # the seal goes with it: same recording, same proof
    assert copy == proof
    with pytest.raises(TypeError):
        dataclasses.replace(proof, _seal=None)


def test_a_call_is_recorded_only_with_a_proof() -> None:
    call = host_call()
    with pytest.raises(TypeError, match="VerifiedRecording"):
        call.mark_recorded("verified")  # type: ignore[arg-type]
    assert call.status is RecordingStatus.UNRECORDED and call.proof is None
    with pytest.raises(AttributeError):
        call.status = RecordingStatus.RECORDED  # type: ignore[misc]


async def test_the_proof_makes_it_recorded_and_interruption_withdraws_it(
        tmp_path: Path) -> None:
    rec, ami = recorder(tmp_path)
    call = host_call()
    with writing(rec.paths(CALL_ID)[1]):
        call.mark_recorded(await proven(rec, ami))
    assert call.status is RecordingStatus.RECORDED and call.recording is not None
    call.mark_interrupted(StatusReason.RECORDING_STOPPED_MID_CALL)
    assert call.proof is None and call.file is not None  # still finished, never re-told


async def test_the_gate_plays_while_the_recording_runs(tmp_path: Path) -> None:
    rec, ami = recorder(tmp_path)
    door = StepDoor()
    with writing(rec.paths(CALL_ID)[1]):
        proof = await proven(rec, ami)
        notice = await Announcer(rec).announce(door, proof, "callrec/notice", "ja")
    assert notice.played and notice.completed and door.played == ["callrec/notice"]


async def test_the_gate_checks_right_before_playing(tmp_path: Path) -> None:
    """A proof made while the file was written, the writer gone since: nothing is sent."""
    rec, ami = recorder(tmp_path)
    door = StepDoor()
    with writing(rec.paths(CALL_ID)[1]) as fd:
        proof = await proven(rec, ami)
        os.close(fd)
        with pytest.raises(NotRecording):
            Announcer(rec).announce(door, proof, "callrec/notice", "ja")
    assert door.log == []


def test_the_gate_takes_nothing_but_a_proof(tmp_path: Path) -> None:
    rec, _ = recorder(tmp_path)
    with pytest.raises(TypeError):
        Announcer(rec).announce(StepDoor(), None, "callrec/notice", "ja")  # type: ignore[arg-type]


@pytest.mark.parametrize(("interrupted", "writing_now", "told"), [
    (False, True, True),
    (True, True, False),  # stopped mid-call: telling would be a lie
    (False, False, False),  # MixMonitor closed the file already
])
async def test_new_party_told_only_while_recorded(tmp_path: Path, interrupted: bool,
                                                  writing_now: bool, told: bool) -> None:
    rec, ami = recorder(tmp_path)
    f = flow(recorder=rec)
    call = host_call()
    with writing(rec.paths(CALL_ID)[1]) as fd:
        call.mark_recorded(await proven(rec, ami))
        if interrupted:
            call.mark_interrupted(StatusReason.RECORDING_STOPPED_MID_CALL)
        if not writing_now:
            os.close(fd)
        door = StepDoor()
        await f.announce_to_party(call, door, Plan(Policy.FORCE, "ja", None), NEW_PARTY,
                                  "0398765432")
    leg = call.leg(NEW_PARTY)
    assert leg.endpoint == "0398765432"
    assert door.played == (["callrec/notice"] if told else [])
    assert door.vars["CALLREC_STATUS"] == ("recorded" if told else "unrecorded")
    assert (leg.notice is not None) is told


async def test_a_never_call_tells_no_new_party(tmp_path: Path) -> None:
    rec, ami = recorder(tmp_path)
    call = host_call()
    with writing(rec.paths(CALL_ID)[1]):
        call.mark_recorded(await proven(rec, ami))
        door = StepDoor()
        await flow(recorder=rec).announce_to_party(call, door, Plan(Policy.NEVER, "ja", None),
                                                   NEW_PARTY, "")
    assert door.played == [] and door.vars["CALLREC_STATUS"] == "unrecorded"
