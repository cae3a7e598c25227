"""Transfers: the recording is on the customer's channel, so it keeps going through a transfer,
and the manifest lists every agent in order with their bridge times."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from callrec.manifest import CallManifest
from testbench.asterisk import ami_action
from testbench.audio import wait_complete
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.endpoints import Endpoints
from testbench.sipp import Caller
from testbench.sipua import AttendedTransferPhone
from tests.helpers import wait_for_channel

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]


def assert_transferred(m: CallManifest, transferer: str, held_s: float) -> None:
    """One manifest and one recording for the whole customer conversation: the transferring
    agent, then agent-answer, in order, with their bridge times."""
    assert [a.endpoint for a in m.agents] == [transferer, "agent-answer"], m.agents
    first, second = m.agents
    assert first.bridged_at and first.left_at and second.bridged_at and second.answered_at
    assert first.bridged_at < first.left_at <= second.bridged_at
    assert m.status == "recorded" and m.outcome == "completed" and m.notice.completed
    assert m.recording is not None
    info = wait_complete(Path(m.recording.path))
    assert abs(info.duration - held_s) < 0.7  # from the notice to the caller's hang-up


def test_blind_transfer_one_recording_both_agents(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    # DID 9008 routes to agent-transfer, which answers and after 3 s REFERs the caller to 2002
    # (agent-answer).
    run = caller.call("9008", hold_s=14.0, caller_user=number, audio=bench.silence())
    [call] = run.calls
    assert call.final_status == 200 and call.hangup_by_us is True
    [m] = manifests(number)
    assert_transferred(m, "agent-transfer", 14.0)
    refers = [msg for c in bench.agents["transfer"].calls() for msg in c.messages
              if msg.sent and msg.method == "REFER"]
    assert refers, "the agent phone never sent its REFER"


def test_transfer_to_an_outside_number_announces_to_the_new_party(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    outside = bench.start_customer(outside=True)
    try:
        number = unique_caller()
        # DID 9009: agent-transfer-out answers, then REFERs the caller to 2003, which dials
        # 0398765432 out through trunk2 with the shipped outbound subroutine.
        run = caller.call("9009", hold_s=17.0, caller_user=number, audio=bench.silence())
        assert run.calls[0].final_status == 200
        [m] = manifests(number)
    finally:
        outside.stop()
    assert [a.endpoint for a in m.agents] == ["agent-transfer-out", "0398765432"], m.agents
    new = m.agents[1]
    assert new.channel.startswith("PJSIP/trunk2-")
    assert new.notice is not None and new.notice.played and new.notice.completed
    assert new.notice.ended_at is not None and new.bridged_at is not None
    assert new.notice.ended_at <= new.bridged_at  # told before the conversation reached them
    assert bench.asterisk.played(new.channel, "callrec/notice")
    assert m.status == "recorded" and m.notice.completed  # the customer's own notice
    spool = bench.asterisk.recordings
    # One recording for the whole conversation: the new party's leg started none of its own.
    assert not [p for p in spool.glob("*.json")
                if CallManifest.read(p).caller.number_raw == "0398765432"
                and CallManifest.read(p).entered_at >= m.entered_at]


def test_attended_transfer_one_recording_both_agents(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        # DID 9010: agent-consult answers after the notice and hangs up 8 s later.
        placed = pool.submit(caller.call, "9010", hold_s=20.0, caller_user=number,
                             audio=bench.silence())
        agent = wait_for_channel(endpoints, "PJSIP/agent-consult-")
        time.sleep(1.0)
        # The agent starts an attended transfer to 2002 (agent-answer), as its feature code
        # would; hanging up after the consultation completes it.
        reply = ami_action(bench.ports.ami, endpoints.asterisk,
                           {"Action": "Atxfer", "Channel": agent, "Exten": "2002",
                            "Context": "callrec-sandbox-agents"})
        assert reply.get("Response") == "Success", reply
        assert placed.result().calls[0].final_status == 200
    [m] = manifests(number)
    assert_transferred(m, "agent-consult", 20.0)


def test_attended_transfer_by_refer_one_recording_both_agents(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    phone = AttendedTransferPhone(bench.ports.agent_attended, bench.ports.sip)
    phone.start()
    try:
        number = unique_caller()
        # DID 9011: agent-attended answers after the notice, calls 2002 (agent-answer) 2 s
        # later, and 2 s after that REFERs the caller there with Replaces.
        run = caller.call("9011", hold_s=16.0, caller_user=number, audio=bench.silence())
    finally:
        phone.stop()
    assert not phone.error, phone.error
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    assert_transferred(m, "agent-attended", 16.0)
    assert any("Replaces=" in text for way, text in phone.messages
               if way == ">" and text.startswith("REFER"))

