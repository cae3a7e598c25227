"""Payment pauses (ari_app/pause.py) against a real Recorder and a growing file held open as
MixMonitor holds it, with a fake AMI: the mute by ID, the proof withdrawn for the pause, the
resume proven before its prompt (through the notice's gate), and every way a pause ends. The real
PBX, the silence in the file and the caller's audio: tests/ari_app/test_pause_integration.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from pydantic import ValidationError

from ari_app.ami import AmiClient, AmiError, AmiRefused
from ari_app.announce import Announcer, PlayResult
from ari_app.call import Call
from ari_app.config import ApiSettings, AriAppSettings
from ari_app.control import ControlApi
from ari_app.metrics import CallMetrics
from ari_app.pause import Answer, Pauses
from ari_app.whisper import Whisper
from callrec.lifecycle import Tasks
from callrec.manifest import EventKind, Party, PauseEnd, PauseSource, Policy
from callrec.reasons import StatusReason
from tests.fakes import CALL_ID, CHANNEL, FakeAmi, StepDoor, proven, recorder, writing
from tests.helpers import metric

MUTED = {"Action": "MixMonitorMute", "Channel": CHANNEL, "MixMonitorID": "0x55d1",
         "Direction": "both", "State": "1"}
UNMUTED = {**MUTED, "State": "0"}


class MuteAmi(FakeAmi):
    """Refuses MixMonitorMute with ``refuse`` (State "1"/"0") or times out with ``lose``."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()
        self.lose: set[str] = set()

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        if fields.get("Action") == "MixMonitorMute":
            if fields["State"] in self.refuse:
                raise AmiRefused("AMI MixMonitorMute refused: Cannot set mute flag")
            if fields["State"] in self.lose:
                raise AmiError("AMI MixMonitorMute timed out after 2.0 s")
        return await super().action(fields, timeout)


@dataclass
class FakeWhisper:
    played: list[tuple[str, str]] = field(default_factory=list)

    async def play(self, channel: str, media: str, language: str | None = None,
                   max_s: float = 60.0) -> PlayResult:
        self.played.append((channel, media))
        now = datetime.now(UTC)
        return PlayResult(now, now, True)


@dataclass
class Bench:
    call: Call
    pauses: Pauses
    ami: MuteAmi
    whisper: FakeWhisper
    metrics: CallMetrics
    saved: list[int]
    alerts: list[tuple[str, str]]
    grow: asyncio.Event


async def _grow(fd: int, on: asyncio.Event) -> None:
    """MixMonitor's writes: 20 ms of 8 kHz audio every 20 ms while ``on`` (muted or not)."""
    while True:
        await on.wait()
        os.write(fd, b"\0" * 320)
        await asyncio.sleep(0.02)


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    settings = AriAppSettings.model_validate({
        "pause": {"max_s": 30, "prove_timeout_s": 0.5},
        "routes": {"7001": {"context": "pay", "pause": False}},
        "queues": {"legal": {"pause": False}}})
    ami = MuteAmi()
    rec, _ = recorder(tmp_path, ami)
    with writing(tmp_path / f"{CALL_ID}.wav") as fd:
        call = Call.from_agi("1700000000.1", CHANNEL, "9001", Party(number="0312345678"),
                             Policy.OPTIONAL)
        call.mark_recorded(await proven(rec, ami))
        ami.actions.clear()
        grow = asyncio.Event()
        grow.set()
        writer = asyncio.create_task(_grow(fd, grow))
        metrics, whisper, tasks = CallMetrics(lambda: 1.0), FakeWhisper(), Tasks()
        saved: list[int] = []
        alerts: list[tuple[str, str]] = []
        pauses = Pauses(settings, cast(AmiClient, ami), rec, Announcer(rec),
                        cast(Whisper, whisper), metrics, tasks,
                        lambda c: saved.append(len(c.pauses)),
                        lambda call_id, action, facts: alerts.append((call_id, action)))
        yield Bench(call, pauses, ami, whisper, metrics, saved, alerts, grow)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await tasks.cancel()


def counted(b: Bench, name: str) -> float:
    return metric(generate_latest(b.metrics.registry).decode(), name)


async def test_a_pause_mutes_by_id_withdraws_the_proof_and_a_proven_resume_says_so(
        bench: Bench) -> None:
    b, door = bench, StepDoor()
    assert await b.pauses.pause(b.call, PauseSource.KEY, "agent-07", door) is Answer.PAUSED
    assert b.ami.actions == [MUTED] and door.played == ["callrec/paused"]
    assert b.call.proof is None and b.call.paused is not None
    assert b.saved and b.saved[0] == 1  # journaled before the mute was sent
    # Nothing says the call is recorded during the pause: the warning's gate refuses.
    event = await b.pauses.announcer.warn(b.call, door, "callrec/warning", "ja", "agent-07")
    assert event.kind is EventKind.WARNING_REFUSED
    assert await b.pauses.pause(b.call, PauseSource.API, "crm") is Answer.ALREADY_PAUSED

    assert await b.pauses.resume(b.call, speaker=door) is Answer.RESUMED
    assert b.ami.actions == [MUTED, UNMUTED]
    assert door.played == ["callrec/paused", "callrec/resumed"] and b.call.proof is not None
    b.call.end(datetime.now(UTC))
    m = b.call.manifest()
    [p] = m.pauses
    assert (p.source, p.by, p.ended_by, p.resume_proven) == (
        PauseSource.KEY, "agent-07", PauseEnd.RESUME, True)
    assert p.offset_s is not None and p.end_offset_s is not None
    assert 0 <= p.offset_s <= p.end_offset_s and p.ended_at and p.ended_at >= p.started_at
    kinds = [e.kind for e in m.timeline]
    assert kinds.index(EventKind.RECORDING_PAUSED) < kinds.index(EventKind.RECORDING_RESUMED)
    assert m.status == "recorded"
    assert counted(b, 'callrec_pauses_total{source="key"}') == 1
    assert counted(b, 'callrec_pause_ends_total{ended_by="resume",proven="true"}') == 1


async def test_a_resume_that_cannot_be_proven_claims_nothing(bench: Bench) -> None:
    b, door = bench, StepDoor()
    await b.pauses.pause(b.call, PauseSource.DIALPLAN, "payment-ivr", door)
    b.ami.refuse.add("0")  # StopMixMonitor meanwhile: its datastore is gone
    assert await b.pauses.resume(b.call, speaker=door) is Answer.UNPROVEN
    assert door.played == ["callrec/paused"]  # no "resumed"
    assert b.call.proof is None
    m = b.call.manifest()
    assert m.status == "interrupted" and m.status_reason is StatusReason.RECORDING_NOT_RESUMED
    assert m.pauses[0].resume_proven is False and "not found" in (m.pauses[0].detail or "")
    assert EventKind.RESUME_UNPROVEN in [e.kind for e in m.timeline]
    assert b.alerts == [(b.call.call_id, "resume_unproven")]
    assert counted(b, 'callrec_pause_ends_total{ended_by="resume",proven="false"}') == 1


async def test_a_file_that_stops_growing_is_not_proven(bench: Bench) -> None:
    b = bench
    await b.pauses.pause(b.call, PauseSource.API, "crm")
    b.grow.clear()  # the writer stalls (a full disk)
    await asyncio.sleep(0.05)
    assert await b.pauses.resume(b.call) is Answer.UNPROVEN
    assert "did not grow" in (b.call.pauses[0].detail or "")
    assert b.whisper.played == [(CHANNEL, "sound:callrec/paused")]


async def test_auto_resume_at_max_s_through_the_whisper(bench: Bench) -> None:
    b = bench
    b.pauses.settings.pause.max_s = 0.2
    assert await b.pauses.pause(b.call, PauseSource.API, "crm") is Answer.PAUSED
    for _ in range(100):
        if b.call.paused is None:
            break
        await asyncio.sleep(0.02)
    assert b.call.pauses[0].ended_by is PauseEnd.AUTO and b.call.pauses[0].resume_proven
    await asyncio.sleep(0.05)  # the resumed prompt, after the proof
    assert b.whisper.played == [(CHANNEL, "sound:callrec/paused"),
                                (CHANNEL, "sound:callrec/resumed")]


async def test_a_warning_during_a_pause_resumes_first(bench: Bench) -> None:
    b, door = bench, StepDoor()
    await b.pauses.pause(b.call, PauseSource.KEY, "agent-07", door)
    await b.pauses.resume_before(b.call, PauseEnd.WARNING, door)
    event = await b.pauses.announcer.warn(b.call, door, "callrec/warning", "ja", "agent-07")
    assert event.kind is EventKind.WARNING_PLAYED
    assert b.call.pauses[0].ended_by is PauseEnd.WARNING
    assert door.played == ["callrec/paused", "callrec/resumed", "callrec/warning"]


async def test_two_resumes_at_once_resume_once(bench: Bench) -> None:
    """The agent's *6 while the timer resumes: the second waits for the first and finds the
    pause over (no second unmute, no error)."""
    b, door = bench, StepDoor()
    await b.pauses.pause(b.call, PauseSource.KEY, "agent-07", door)
    first, second = await asyncio.gather(b.pauses.resume(b.call, PauseEnd.AUTO),
                                         b.pauses.resume(b.call, speaker=door))
    assert (first, second) == (Answer.RESUMED, Answer.NOT_PAUSED)
    assert b.ami.actions == [MUTED, UNMUTED] and b.call.proof is not None
    assert [p.ended_by for p in b.call.pauses] == [PauseEnd.AUTO]


async def test_a_hang_up_during_a_pause_ends_it(bench: Bench) -> None:
    b = bench
    await b.pauses.pause(b.call, PauseSource.KEY, "agent-07")
    b.call.end(datetime.now(UTC))
    b.pauses.ended(b.call)
    [p] = b.call.manifest().pauses
    assert p.ended_by is PauseEnd.HANGUP and p.resume_proven is None and p.ended_at


async def test_a_lost_mute_reply_is_no_pause(bench: Bench) -> None:
    b, door = bench, StepDoor()
    b.ami.lose.add("1")
    assert await b.pauses.pause(b.call, PauseSource.KEY, "agent-07", door) is Answer.REFUSED
    assert door.played == []  # the caller is not told a pause that may not be
    assert b.ami.actions == [UNMUTED] and b.call.proof is not None  # unmuted and proven
    assert EventKind.PAUSE_REFUSED in [e.kind for e in b.call.events]


@pytest.mark.parametrize(("did", "queue"), [("7001", None), ("9001", "legal")])
async def test_disabled_for_a_route_or_a_queue(bench: Bench, did: str, queue: str | None,
                                               ) -> None:
    b = bench
    b.call.did = did
    b.call.follow_plan(Policy.OPTIONAL, queue)
    assert await b.pauses.pause(b.call, PauseSource.API, "crm") is Answer.REFUSED
    assert b.ami.actions == [] and b.call.proof is not None
    [refused] = [e for e in b.call.events if e.kind is EventKind.PAUSE_REFUSED]
    assert "disabled" in (refused.detail or "")
    assert counted(b, "callrec_pauses_refused_total") == 1


async def test_an_unrecorded_call_is_not_paused(bench: Bench) -> None:
    b = bench
    b.call.mark_interrupted(StatusReason.RECORDING_STOPPED_MID_CALL)
    assert await b.pauses.pause(b.call, PauseSource.API, "crm") is Answer.REFUSED
    assert b.ami.actions == []


async def test_the_control_api(bench: Bench) -> None:
    b, token = bench, "t" * 20
    api = ControlApi(ApiSettings(port=9999, token=token), {"ch": b.call}, b.pauses)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/v1/calls/{b.call.call_id}"
    async with TestClient(TestServer(api.app())) as client:
        for headers in ({}, {"Authorization": "Bearer " + "u" * 20}, {"Authorization": token}):
            async with client.post(base + "/pause", headers=headers) as r:
                assert r.status == 401 and "Bearer" in r.headers["WWW-Authenticate"]
        async with client.post("/v1/calls/../../etc/pause", headers=auth) as r:
            assert r.status == 404
        async with client.post("/v1/calls/20261207T000000Z-000000000000/pause",
                               headers=auth) as r:
            assert r.status == 404
        for body in (b"{not json", b'{"by": 7}', b'{"by": "a\\nb"}', b"[1]"):
            async with client.post(base + "/pause", headers=auth, data=body) as r:
                assert r.status == 400, body
        async with client.post(base + "/pause", headers=auth, data=b"x" * 10_000) as r:
            assert r.status == 413
        assert b.ami.actions == []  # nothing of the above reached Asterisk
        async with client.post(base + "/pause", headers=auth, json={"by": "crm-17"}) as r:
            assert r.status == 200 and (await r.json())["state"] == "paused"
        async with client.get(base, headers=auth) as r:
            status = await r.json()
            assert status["paused"] is True and status["pauses"][0]["by"] == "crm-17"
        async with client.post(base + "/resume", headers=auth) as r:
            assert (await r.json())["state"] == "resumed"
        b.call.follow_plan(Policy.OPTIONAL, "legal")  # pauses disabled on this queue
        async with client.post(base + "/pause", headers=auth) as r:
            body = await r.json()
            assert r.status == 409 and body["state"] == "refused" and "disabled" in body["detail"]


def test_the_api_needs_a_token_when_served() -> None:
    with pytest.raises(ValidationError, match="api.token"):
        ApiSettings(port=9471)
    with pytest.raises(ValidationError, match="api.token"):
        ApiSettings(port=9471, token="short")
    assert ApiSettings().port == 0
