"""Outbound calls: an agent phone (SIPp UAC, endpoint agent-answer) calls a customer (SIPp UAS
behind the trunk) through the shipped ``callrec-outbound`` subroutine on Dial's ``U()``."""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callrec.manifest import CallManifest
from testbench.audio import starts_with, wait_complete
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.sipp import AgentPhone
from tests.helpers import BROKEN_SPOOL, NOTICE_JA, NOTICE_S, StartApp, assert_no_notice

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]


@pytest.fixture
def customer(bench: Bench) -> Iterator[AgentPhone]:
    phone = bench.start_customer()
    yield phone
    phone.stop()


def customer_number(prefix: str = "01") -> str:
    return prefix + str(uuid.uuid4().int)[:9]


def cdr_linkedids(bench: Bench, dstchannel: str, timeout: float = 5) -> set[str]:
    """The linked ids of the CDR rows that dialled ``dstchannel`` (cdr_csv with loguniqueid,
    loguserfield and newcdrcolumns: dstchannel is column 6, linkedid column 19)."""
    assert bench.asterisk is not None
    deadline = time.monotonic() + timeout
    while True:
        with bench.asterisk.cdr_csv.open(newline="") as f:
            found = {row[19] for row in csv.reader(f) if len(row) > 19 and row[6] == dstchannel}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_outbound_call_customer_hears_the_notice_before_the_agent(
    bench: Bench, customer: AgentPhone, callrec: CallrecApp, manifests: Manifests,
) -> None:
    number = customer_number()
    run = bench.agent_caller().call(number, hold_s=8.0, caller_user="agent-answer",
                                    caller_name="Agent")
    [call] = run.calls
    # The agent's call is answered (bridged) only once the notice has played to the customer.
    assert call.final_status == 200 and call.answer_ms is not None
    assert call.answer_ms > NOTICE_S * 1000 - 300, call.answer_ms
    [m] = manifests(number)
    assert m.direction == "outbound" and m.door == "agi" and m.did is None
    assert m.caller.number == number  # the customer
    assert [a.endpoint for a in m.agents] == ["agent-answer"]  # the calling endpoint
    agent = m.agents[0]
    assert m.status == "recorded" and m.outcome == "completed"
    assert m.notice.played and m.notice.completed and m.notice.ended_at is not None
    assert m.recording is not None and m.recording.verified_at is not None
    assert m.notice.started_at is not None and m.recording.verified_at <= m.notice.started_at
    assert agent.bridged_at is not None and m.notice.ended_at <= agent.bridged_at
    assert bench.asterisk is not None and m.asterisk_channel
    assert m.asterisk_channel.startswith("PJSIP/trunk-")  # recorded on the customer's channel
    assert bench.asterisk.played(m.asterisk_channel, "callrec/notice")
    assert any(number in c.messages[0].first_line for c in customer.calls() if c.messages)
    # Filed under the linked id Asterisk's CDR gives the call (reconcile matches on it): the
    # agent's, Dial's requestor, not the customer channel's own unique id.
    assert m.asterisk_linkedid and m.asterisk_linkedid != m.asterisk_uniqueid
    assert cdr_linkedids(bench, m.asterisk_channel) == {m.asterisk_linkedid}
    wav = Path(m.recording.path)
    wait_complete(wav)
    score, lag = starts_with(wav, NOTICE_JA)  # the customer is silent: the notice comes first
    assert score > 0.9 and lag < 0.3, (score, lag)


def test_outbound_force_without_recording_hangs_up_both_legs_unannounced(
    bench: Bench, customer: AgentPhone, start_callrec: StartApp, manifests: Manifests,
) -> None:
    start_callrec(**BROKEN_SPOOL)
    number = customer_number("06")  # the bench's outbound route with policy force
    run = bench.agent_caller().call(number, hold_s=8.0, caller_user="agent-answer")
    [call] = run.calls
    assert call.final_status != 200  # the agent is never connected
    [m] = manifests(number)
    assert m.direction == "outbound" and m.policy == "force" and m.outcome == "failed"
    assert m.status == "unrecorded" and m.status_reason == "mixmonitor_unverified"
    assert all(a.bridged_at is None for a in m.agents)
    assert_no_notice(m, bench)


def test_outbound_optional_without_recording_connects_unannounced(
    bench: Bench, customer: AgentPhone, start_callrec: StartApp, manifests: Manifests,
) -> None:
    start_callrec(**BROKEN_SPOOL)
    number = customer_number()
    run = bench.agent_caller().call(number, hold_s=4.0, caller_user="agent-answer")
    [call] = run.calls
    assert call.final_status == 200 and call.answer_ms is not None
    assert call.answer_ms < NOTICE_S * 1000  # no notice delayed the bridge
    [m] = manifests(number)
    assert m.status == "unrecorded" and m.policy == "optional" and m.outcome == "completed"
    assert m.agents and m.agents[0].bridged_at is not None
    assert_no_notice(m, bench)
