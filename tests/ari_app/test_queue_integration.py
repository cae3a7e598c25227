"""Queues, agents and parking through the shipped dialplan: app_queue with PJSIP and FreePBX-style
Local members, app_agent_pool agents, transfers and res_parking (testbench/conf/queues.conf). One
manifest and one recording per call; the agent is the person (member name, agent id), with the raw
channel facts beside it; the queue's wait and result; outcomes from what really happened."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path

import pytest

from callrec.manifest import CallManifest
from testbench.audio import wait_complete
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.endpoints import Endpoints
from testbench.sipp import Caller
from testbench.sipua import AttendedTransferPhone
from tests.helpers import wait_for_channel

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]
NOTICE_S = 4.7  # the ja notice (sounds/), before the caller reaches the queue


def one_recording(m: CallManifest, held_s: float) -> None:
    assert m.status == "recorded" and m.notice.completed, (m.status, m.status_reason)
    assert m.recording is not None
    info = wait_complete(Path(m.recording.path))
    assert abs(info.duration - held_s) < 0.8  # the whole call, notice to hang-up


@pytest.mark.parametrize("did", ["9101", "8101"], ids=["stasis", "agi"])
def test_ring_all_pjsip_members_one_manifest_answering_member_is_the_agent(
    did: str, bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    run = caller.call(did, hold_s=12.0, caller_user=number, audio=bench.silence())
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    one_recording(m, 12.0)
    assert m.outcome == "completed" and m.abandoned is None
    [visit] = m.queues
    assert visit.queue == "support" and visit.result == "answered" and visit.position == 1
    # Measured outside callrec: the answering phone's 200 OK, after the notice ended.
    answered = [c for c in bench.agents["answer"].calls()
                if c.invite_at and c.invite_at.replace(tzinfo=UTC) > m.entered_at]
    assert answered and m.notice.ended_at is not None
    ok_ms = answered[0].answer_ms
    assert ok_ms is not None and answered[0].invite_at is not None
    measured = (answered[0].invite_at.replace(tzinfo=UTC) - m.notice.ended_at).total_seconds() \
        + ok_ms / 1000
    assert visit.wait_s is not None and abs(visit.wait_s - measured) < 0.3, (visit, measured)
    legs = {leg.member_name: leg for leg in m.agents}
    assert set(legs) == {"Sato Hanako", "Suzuki Ichiro"}, m.agents
    sato, suzuki = legs["Sato Hanako"], legs["Suzuki Ichiro"]
    assert sato.agent_id == "Sato Hanako" and sato.interface == "PJSIP/agent-answer"
    assert sato.endpoint == "agent-answer" and sato.answered_at and sato.bridged_at
    assert sato.queue == "support" and sato.offered_at is not None
    assert suzuki.dial_status == "CANCEL" and suzuki.answered_at is None
    assert suzuki.offered_at is not None and suzuki.bridged_at is None
    assert m.agent() == "Sato Hanako" and m.queue() == "support"


@pytest.mark.parametrize("did", ["9103", "8103"], ids=["stasis", "agi"])
def test_freepbx_local_member_is_the_member_and_its_phone_not_the_local_channel(
    did: str, bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call(did, hold_s=10.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    one_recording(m, 10.0)
    [leg] = m.agents
    assert leg.channel.startswith("Local/1001@callrec-sandbox-qmembers-")  # the raw fact
    assert leg.agent_id == "Tanaka Aiko" and leg.agent_name == "Tanaka Aiko"
    assert leg.interface == "Local/1001@callrec-sandbox-qmembers/n"
    assert leg.device == "agent-answer" and (leg.device_channel or "").startswith("PJSIP/")
    assert m.agent() == "Tanaka Aiko" and m.outcome == "completed"


def test_app_agent_pool_agent_is_the_agent_id(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    with ThreadPoolExecutor(1) as pool:
        # Agent 1001 logs in from the agent-busy endpoint's number and waits for calls.
        login = pool.submit(bench.agent_caller().call, "agentlogin-1001", hold_s=30.0,
                            caller_user="agent-busy")
        wait_for_channel(endpoints, "PJSIP/agent-busy-")
        time.sleep(1.0)
        number = unique_caller()
        caller.call("9104", hold_s=10.0, caller_user=number, audio=bench.silence())
        [m] = manifests(number)
        login.result()
    one_recording(m, 10.0)
    [leg] = m.agents
    assert leg.agent_id == "1001" and leg.agent_name == "Yamada Taro", leg
    assert leg.device == "agent-busy" and leg.queue == "agents"
    assert m.agent() == "1001" and m.outcome == "completed"


def test_caller_hangs_up_in_the_queue_abandoned_with_the_wait(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    # Queue "nobody" gives up after 6 s; the caller hangs up 8 s in (about 3 s in the queue).
    caller.call("9105", hold_s=8.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    assert m.outcome == "abandoned", m.outcome
    assert m.abandoned is not None and m.abandoned.where == "queue"
    assert m.abandoned.queue == "nobody"
    [visit] = m.queues
    assert visit.result == "abandoned" and visit.wait_s is not None
    assert m.notice.ended_at is not None and m.ended_at is not None
    measured = (m.ended_at - m.notice.ended_at).total_seconds()
    assert abs(visit.wait_s - measured) < 0.4 and m.abandoned.after_s == visit.wait_s
    assert [leg.dial_status for leg in m.agents] == ["CANCEL"]


def test_queue_timeout_is_no_agent_with_the_queue_status(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    run = caller.call("9105", hold_s=20.0, caller_user=number, audio=bench.silence())
    assert run.calls[0].hangup_by_us is False  # the PBX hung up after the queue gave up
    [m] = manifests(number)
    assert m.outcome == "no_agent" and m.abandoned is None, (m.outcome, m.abandoned)
    [visit] = m.queues
    assert visit.result == "timeout" and visit.wait_s is not None
    assert 5.5 < visit.wait_s < 7.5


def test_queue_agent_blind_transfer_keeps_one_recording_and_both_agents(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    # Queue "transfers": agent-transfer (Takahashi Ken) answers, REFERs the caller to 2002.
    caller.call("9106", hold_s=14.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    one_recording(m, 14.0)
    assert [leg.agent_id for leg in m.agents] == ["Takahashi Ken", "agent-answer"], m.agents
    first, second = m.agents
    assert first.bridged_at and first.left_at and second.bridged_at
    assert first.left_at <= second.bridged_at
    assert m.outcome == "completed" and m.agent() == "Takahashi Ken"


def test_queue_agent_attended_transfer_keeps_one_recording_and_both_agents(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    phone = AttendedTransferPhone(bench.ports.agent_attended, bench.ports.sip)
    phone.start()
    try:
        number = unique_caller()
        caller.call("9107", hold_s=16.0, caller_user=number, audio=bench.silence())
    finally:
        phone.stop()
    assert not phone.error, phone.error
    [m] = manifests(number)
    one_recording(m, 16.0)
    assert [leg.agent_id for leg in m.agents] == ["Ito Mai", "agent-answer"], m.agents
    assert m.agents[0].left_at and m.agents[1].bridged_at
    assert m.outcome == "completed"


def test_parked_and_retrieved_by_another_agent_one_recording_both_agents(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        # Queue "parking": agent-park (Watanabe Yui) answers and 3 s later parks the caller
        # (REFER to 700): space 701. agent-answer picks it up by dialling 701.
        placed = pool.submit(caller.call, "9108", hold_s=22.0, caller_user=number,
                             audio=bench.silence())
        time.sleep(NOTICE_S + 6.0)
        bench.agent_caller().call("701", hold_s=6.0, caller_user="agent-answer")
        run = placed.result()
    [m] = manifests(number)
    # The retriever hanging up ends the call (ParkedCall's bridge): the caller got a BYE.
    [call] = run.calls
    assert call.hangup_by_us is False and call.duration_s is not None
    one_recording(m, call.duration_s)
    [park] = m.parks
    assert park.space == "701" and park.result == "retrieved", park
    assert (park.retrieved_by or "").startswith("PJSIP/agent-answer-")
    assert park.parked_by == "PJSIP/agent-park" and park.ended_at
    assert [leg.endpoint for leg in m.agents] == ["agent-park", "agent-answer"], m.agents
    parker, retriever = m.agents
    assert parker.agent_id == "Watanabe Yui" and parker.left_at
    assert parker.left_at <= park.parked_at + (park.ended_at - park.parked_at)
    assert retriever.bridged_at and retriever.bridged_at >= park.parked_at
    assert m.outcome == "completed" and m.abandoned is None


def test_caller_hangs_up_while_parked_is_abandoned_parked(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call("9108", hold_s=12.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    [park] = m.parks
    assert park.result == "caller_hung_up"
    assert m.outcome == "abandoned" and m.abandoned is not None
    assert m.abandoned.where == "parked" and m.abandoned.after_s is not None
    assert 2.0 < m.abandoned.after_s < 5.0  # parked about 8.2 s in, gone at 12 s


def test_queue_policy_never_and_force(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    never, force = unique_caller(), unique_caller()
    caller.call("9109", hold_s=5.0, caller_user=never, audio=bench.silence())
    caller.call("9110", hold_s=8.0, caller_user=force, audio=bench.silence())
    [m] = manifests(never)
    assert m.policy == "never" and m.status == "unrecorded" and m.status_reason == "policy_never"
    assert not m.notice.played and m.recording is None
    assert m.queues[0].queue == "private" and m.agent() == "Sato Hanako"
    [f] = manifests(force)
    assert f.policy == "force" and f.status == "recorded" and f.notice.completed


def test_agent_directory_names_the_agent_of_a_plain_dial_route(
    bench: Bench, caller: Caller, start_callrec: Callable[..., CallrecApp],
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    start_callrec(CALLREC_AGENTS=json.dumps({"agent-answer": {"id": "sato",
                                                              "name": "Sato Hanako"}}))
    number = unique_caller()
    caller.call("9001", hold_s=7.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    [leg] = m.agents
    assert leg.agent_id == "sato" and leg.agent_name == "Sato Hanako"
    assert leg.endpoint == "agent-answer" and m.agent() == "sato"


def test_round_robin_offers_one_member_at_a_time_in_order(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    # Queue "sales" (rrmemory, 2 s per member, retry 1 s): Suzuki Ichiro never answers, Sato
    # Hanako does.
    caller.call("9102", hold_s=14.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    one_recording(m, 14.0)
    names = [leg.member_name for leg in m.agents]
    assert names[-1] == "Sato Hanako" and m.agent() == "Sato Hanako", m.agents
    # rrmemory starts after the member who took the last call: Suzuki first, or Sato at once.
    if names == ["Suzuki Ichiro", "Sato Hanako"]:
        suzuki, sato = m.agents
        assert suzuki.dial_status == "NOANSWER" and suzuki.answered_at is None
        assert suzuki.offered_at and sato.offered_at
        assert 2.8 < (sato.offered_at - suzuki.offered_at).total_seconds() < 4.5
        assert m.queues[0].wait_s is not None and m.queues[0].wait_s > 1.8
    else:
        assert names == ["Sato Hanako"], names
    assert m.queues[0].result == "answered" and m.outcome == "completed"


def test_an_agent_logged_in_before_callrec_started_is_still_the_agent_id(
    bench: Bench, caller: Caller, start_callrec: Callable[..., CallrecApp],
    manifests: Manifests, unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    """callrec reads who is logged in (AMI Agents) at each login, not only AgentLogin events."""
    with ThreadPoolExecutor(1) as pool:
        login = pool.submit(bench.agent_caller().call, "agentlogin-1001", hold_s=25.0,
                            caller_user="agent-busy")
        wait_for_channel(endpoints, "PJSIP/agent-busy-")
        time.sleep(1.0)
        start_callrec()
        number = unique_caller()
        caller.call("8104", hold_s=8.0, caller_user=number, audio=bench.silence())
        [m] = manifests(number)
        login.result()
    [leg] = m.agents
    assert (leg.agent_id, leg.agent_name, leg.device) == ("1001", "Yamada Taro", "agent-busy")
