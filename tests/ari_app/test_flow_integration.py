"""The honest call flow through the shipped dialplan, with real SIP calls and recordings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from callrec.manifest import CallManifest
from testbench.audio import starts_with, wait_complete
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.sipp import Caller
from tests.helpers import NOTICE_JA

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

Manifests = Callable[..., list[CallManifest]]


# One flow, two doors: 9xxx DIDs enter through Stasis(), 8xxx through AGI() (extensions.conf).
DOORS = [pytest.param("9001", "stasis", id="stasis"), pytest.param("8001", "agi", id="agi")]


@pytest.mark.parametrize(("did", "door"), DOORS)
def test_answered_call_is_recorded_from_the_notice_on(
    did: str, door: str, bench: Bench, caller: Caller, callrec: CallrecApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    number = unique_caller()
    run = caller.call(did, hold_s=9.0, caller_user=number, caller_name="Sato",
                      audio=bench.silence())
    [call] = run.calls
    assert call.final_status == 200 and call.hangup_by_us is True
    [m] = manifests(number)
    assert m.did == did and m.door == door
    assert m.caller.name_raw == "Sato" and m.caller.number == number
    assert m.status == "recorded" and m.status_reason is None
    assert m.outcome == "completed" and m.outcome_source == "derived"
    assert [a.endpoint for a in m.agents] == ["agent-answer"]
    agent = m.agents[0]
    assert agent.dial_status == "ANSWER" and agent.bridged_at and agent.left_at
    assert m.notice.played and m.notice.completed and m.notice.language == "ja"
    assert m.notice.started_at and m.notice.ended_at and m.recording is not None
    # The order that makes callrec honest: verified recording, then notice, then agent.
    assert m.recording.verified_at is not None
    assert m.recording.verified_at <= m.notice.started_at
    assert agent.answered_at is not None and m.notice.ended_at <= agent.answered_at
    assert m.hangup_cause == 16

    # The PBX's own log confirms the notice was played on this very channel.
    assert m.asterisk_channel and bench.asterisk.played(m.asterisk_channel, "callrec/notice")
    wav = Path(m.recording.path)
    info = wait_complete(wav)
    assert m.recording.size == wav.stat().st_size and len(m.recording.sha256 or "") == 64
    assert abs(info.duration - 9.0) < 0.5
    # The caller sent silence: the first seconds of the recording are the notice itself.
    score, lag = starts_with(wav, NOTICE_JA)
    assert score > 0.9, (score, lag)
    assert lag < 0.3


@pytest.mark.parametrize(("did", "door"), DOORS)
def test_caller_hangs_up_during_the_notice(
    did: str, door: str, bench: Bench, caller: Caller, callrec: CallrecApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call(did, hold_s=2.0, caller_user=number)
    [m] = manifests(number)
    assert m.door == door and m.outcome == "abandoned_in_notice"
    assert m.notice.played and not m.notice.completed
    assert m.status == "recorded" and m.agents == []
    assert not any(number in c.from_header for c in bench.agents["answer"].calls())


@pytest.mark.parametrize(("did", "phone"), [("9002", "busy"), ("9003", "noanswer")])
def test_no_agent(
    did: str, phone: str, bench: Bench, caller: Caller, callrec: CallrecApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call(did, hold_s=12.0, caller_user=number)
    [m] = manifests(number)
    assert m.outcome == "no_agent", m.agents
    assert [a.endpoint for a in m.agents] == [f"agent-{phone}"]
    assert m.notice.completed and m.status == "recorded"


def test_outcome_set_by_the_dialplan_wins(
    caller: Caller, callrec: CallrecApp, manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call("9004", hold_s=7.0, caller_user=number)
    [m] = manifests(number)
    assert m.outcome == "complaint" and m.outcome_source == "dialplan"
    assert m.agents and m.agents[0].dial_status == "ANSWER"


def test_a_did_without_a_route_is_turned_away_as_failed_not_abandoned(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """A DID that reaches Stasis but is missing from CALLREC_ROUTES (a misconfiguration, as a
    new user makes it): no recording, no notice, the unavailable prompt, outcome failed."""
    assert bench.asterisk is not None
    number = unique_caller()
    run = caller.call("9099", hold_s=6.0, caller_user=number)
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    assert (m.status, m.status_reason, m.outcome) == ("unrecorded", "no_route", "failed")
    assert not m.notice.played and m.recording is None
    assert m.asterisk_channel is not None
    assert not bench.asterisk.played(m.asterisk_channel, "callrec/notice")
    assert bench.asterisk.played(m.asterisk_channel, "callrec/unavailable")
