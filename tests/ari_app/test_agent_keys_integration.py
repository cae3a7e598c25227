"""The agents' hot-keys through the shipped features and dialplan (RFC 2833 DTMF from a SIPp agent
phone): the warning plays only while the recording is verified and running, the end needs a
warning first, each press is on the timeline and alerts a supervisor (a call.flagged webhook,
verified as a receiver would: testbench/webhooks.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from callrec.manifest import CallManifest, EventKind
from testbench.audio import heard_at, wait_complete
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.endpoints import Endpoints
from testbench.procs import free_port
from testbench.sipp import Caller
from testbench.webhooks import Receiver
from tests.helpers import REPO, metric, scrape, stop_mixmonitor, wait_for_channel

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]
WARNING_JA = REPO / "sounds/ja/callrec/warning.wav"
SECRET = "alert-secret-for-tests"


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.down()


@pytest.fixture
def keyed(start_callrec: Callable[..., CallrecApp], hooks: Receiver,
          tmp_path: Path) -> tuple[CallrecApp, int]:
    port = free_port()
    app = start_callrec(**hooks.env(events=["call.flagged", "recording.interrupted"]),
                        CALLREC_WEBHOOKS__OUTBOX=str(tmp_path / "outbox"),
                        CALLREC_METRICS__PORT=str(port))
    return app, port


def kinds(m: CallManifest) -> list[EventKind]:
    return [e.kind for e in m.timeline]


@pytest.mark.parametrize("did", ["9012", "8012"], ids=["stasis", "agi"])
def test_warning_is_played_to_the_caller_recorded_on_the_timeline_and_alerted(
    did: str, bench: Bench, caller: Caller, keyed: tuple[CallrecApp, int], hooks: Receiver,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    phone = bench.start_keys_phone([(2.0, "*7")])
    try:
        number = unique_caller()
        caller.call(did, hold_s=20.0, caller_user=number, audio=bench.silence())
        [m] = manifests(number)
    finally:
        phone.stop()
    [warning] = [e for e in m.timeline if e.kind is EventKind.WARNING_PLAYED]
    assert warning.by == "agent-keys" and "heard in full" in (warning.detail or "")
    assert m.asterisk_channel and bench.asterisk.played(m.asterisk_channel, "callrec/warning")
    assert m.status == "recorded" and m.outcome == "completed"
    assert m.recording is not None and warning.offset_s is not None
    # The warning is in the recording where the timeline says (the caller sent silence).
    wait_complete(Path(m.recording.path))
    assert heard_at(Path(m.recording.path), WARNING_JA, warning.offset_s) > 0.8
    assert kinds(m).index(EventKind.NOTICE_ENDED) < kinds(m).index(EventKind.AGENT_ANSWERED) \
        < kinds(m).index(EventKind.WARNING_PLAYED) < kinds(m).index(EventKind.CALLER_HUNG_UP)
    [alert] = hooks.wait(1)
    assert alert.type == "call.flagged" and alert.signatures == ("v1", "v1a")
    assert alert.data["call_id"] == m.call_id and alert.data["flag"] == "agent_warning"
    assert alert.data["agent"] == "agent-keys" and alert.data["recorded"] is True
    assert metric(scrape(keyed[1]), 'callrec_agent_actions_total{action="warning"}') == 1


def test_no_warning_once_the_recording_has_stopped(
    bench: Bench, caller: Caller, keyed: tuple[CallrecApp, int], hooks: Receiver,
    manifests: Manifests, unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    assert bench.asterisk is not None
    mark = bench.asterisk.log_mark()
    phone = bench.start_keys_phone([(4.0, "*7")])
    try:
        number = unique_caller()
        with ThreadPoolExecutor(1) as pool:
            placed = pool.submit(caller.call, "9012", hold_s=14.0, caller_user=number,
                                 audio=bench.silence())
            wait_for_channel(endpoints, "PJSIP/agent-keys-")
            trunk = wait_for_channel(endpoints, "PJSIP/trunk-")
            # Someone stops the recording (a PBX admin, a full disk...) before the key.
            stop_mixmonitor(bench, endpoints, trunk)
            placed.result()
        [m] = manifests(number)
    finally:
        phone.stop()
    assert m.status == "interrupted"
    [refused] = [e for e in m.timeline if e.kind is EventKind.WARNING_REFUSED]
    assert refused.by == "agent-keys" and "no verified recording" in (refused.detail or "")
    assert EventKind.WARNING_PLAYED not in kinds(m)
    assert bench.asterisk.plays(trunk, "callrec/warning", since=mark) == 0
    assert "Playing 'beeperr." in bench.asterisk.log_text()[mark:]  # the agent's tone
    # A refusal is counted, not flagged; the interruption is the call's one event.
    [event] = hooks.wait(1)
    time.sleep(1.0)
    assert [d.type for d in hooks.deliveries] == ["recording.interrupted"]
    assert event.data["call_id"] == m.call_id and event.data["notice_played"] is True
    assert event.data["reason"] == "recording_stopped_mid_call"
    assert metric(scrape(keyed[1]), 'callrec_agent_actions_total{action="warning_refused"}') == 1


def test_end_needs_a_warning_first(
    bench: Bench, caller: Caller, keyed: tuple[CallrecApp, int], hooks: Receiver,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    phone = bench.start_keys_phone([(2.0, "*8")])
    try:
        number = unique_caller()
        run = caller.call("9012", hold_s=12.0, caller_user=number, audio=bench.silence())
        [m] = manifests(number)
    finally:
        phone.stop()
    assert run.calls[0].hangup_by_us is True  # the call went on until the caller left
    assert EventKind.END_REFUSED in kinds(m) and EventKind.ENDED_BY_AGENT not in kinds(m)
    assert m.outcome == "completed" and m.outcome_source == "derived"
    assert metric(scrape(keyed[1]), 'callrec_agent_actions_total{action="end_refused"}') == 1


def test_warning_then_end_closes_the_call_as_harassment(
    bench: Bench, caller: Caller, keyed: tuple[CallrecApp, int], hooks: Receiver,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    phone = bench.start_keys_phone([(2.0, "*7"), (10.0, "*8")])
    try:
        number = unique_caller()
        run = caller.call("9012", hold_s=45.0, caller_user=number, audio=bench.silence())
        [m] = manifests(number)
    finally:
        phone.stop()
    [call] = run.calls
    assert call.hangup_by_us is False and call.duration_s is not None  # callrec hung up
    assert call.duration_s < 40
    assert m.outcome == "harassment" and m.outcome_source == "agent"
    assert kinds(m).index(EventKind.WARNING_PLAYED) < kinds(m).index(EventKind.ENDED_BY_AGENT)
    assert m.asterisk_channel and bench.asterisk.played(m.asterisk_channel, "callrec/closing")
    [agent_call] = [c for c in phone.calls() if c.invite_at]
    assert agent_call.bye is not None and agent_call.hangup_by_us is False  # the agent is free
    assert [a.data["flag"] for a in hooks.wait(2)] == ["agent_warning", "ended_by_agent"]
    assert len({a.id for a in hooks.deliveries}) == 2
