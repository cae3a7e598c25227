"""AMI queue, agent and parking events applied to a call (ari_app/queues.py), identity
(ari_app/agents.py) and outcomes (ari_app/outcomes.py), with events as Asterisk 22 sent them on
the bench (tests/ari_app/test_queue_integration.py runs the real thing)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ari_app.agents import identify, local_extension
from ari_app.call import Call
from ari_app.config import AgentEntry
from ari_app.queues import RouteWatch, local_base
from callrec.manifest import Policy

CALLER = {"Channel": "PJSIP/trunk-00000005", "Uniqueid": "1796114804.5"}
LOCAL = "Local/1001@callrec-sandbox-qmembers-00000000"


def watched() -> tuple[RouteWatch, Call, list[Call]]:
    call = Call.from_stasis({"id": CALLER["Uniqueid"], "name": CALLER["Channel"]},
                            Policy.OPTIONAL)
    changed: list[Call] = []
    return RouteWatch({call.channel_id: call}, changed.append), call, changed


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"Event": kind, **CALLER, **fields}


def test_local_member_leg_gets_its_member_name_and_the_phone_that_rang() -> None:
    watch, call, changed = watched()
    watch.on_event(ev("QueueCallerJoin", Queue="local", Position="1"))
    member = {"Queue": "local", "MemberName": "Tanaka Aiko", "DestChannel": f"{LOCAL};1",
              "Interface": "Local/1001@callrec-sandbox-qmembers/n"}
    watch.on_event(ev("AgentCalled", **member))
    watch.on_event({"Event": "DialBegin", "Channel": f"{LOCAL};2",
                    "DestChannel": "PJSIP/agent-answer-00000006"})
    watch.on_event(ev("AgentConnect", HoldTime="1", **member))
    [leg] = call.agents
    assert (leg.member_name, leg.device, leg.device_channel) == (
        "Tanaka Aiko", "agent-answer", "PJSIP/agent-answer-00000006")
    assert leg.answered_at and call.queues[0].result == "answered"
    assert call.queues[0].wait_s is not None and len(changed) == 3
    identify(call.agents, {})
    assert leg.agent_id == "Tanaka Aiko" and call.manifest().agent() == "Tanaka Aiko"


def test_the_phone_may_ring_before_the_member_is_announced() -> None:
    watch, call, _ = watched()
    watch.on_event({"Event": "DialBegin", "Channel": f"{LOCAL};2",
                    "DestChannel": "PJSIP/agent-answer-00000006"})
    watch.on_event(ev("AgentCalled", Queue="local", MemberName="T", DestChannel=f"{LOCAL};1"))
    assert call.agents[0].device == "agent-answer"


def test_agent_pool_agent_is_known_by_the_channel_it_logged_in_on() -> None:
    watch, call, _ = watched()
    watch.on_event({"Event": "AgentLogin", "Channel": "PJSIP/agent-busy-00000001",
                    "Agent": "1001"})
    watch.on_event(ev("AgentCalled", Queue="agents", MemberName="Yamada Taro",
                      DestChannel=f"{LOCAL};1"))
    watch.on_bridged([f"{LOCAL};2", "PJSIP/agent-busy-00000001"])
    identify(call.agents, {})
    [leg] = call.agents
    assert (leg.agent_id, leg.agent_name, leg.device) == ("1001", "Yamada Taro", "agent-busy")
    watch.on_event({"Event": "AgentLogoff", "Agent": "1001"})
    assert watch.agents == {}


def test_queue_timeout_wins_over_the_abandon_app_queue_also_sends() -> None:
    watch, call, _ = watched()
    watch.on_event(ev("QueueCallerJoin", Queue="nobody", Position="1"))
    watch.on_event(ev("QueueCallerAbandon", Queue="nobody", HoldTime="6"))
    watch.on_event(ev("QueueCallerLeave", Queue="nobody"))
    assert call.manifest().outcome == "abandoned"  # until the queue's status arrives
    call.on_event({"type": "ChannelVarset", "variable": "QUEUESTATUS", "value": "TIMEOUT"})
    m = call.manifest()
    assert m.outcome == "no_agent" and m.abandoned is None and m.queues[0].result == "timeout"


def test_a_queue_that_refused_the_caller_is_the_routes_queue() -> None:
    _, call, _ = watched()
    call.queue_hint = "support"
    call.on_event({"type": "ChannelVarset", "variable": "QUEUESTATUS", "value": "JOINEMPTY"})
    m = call.manifest()
    assert [(v.queue, v.result) for v in m.queues] == [("support", "joinempty")]
    assert m.outcome == "no_agent"


def test_caller_gone_while_parked_is_abandoned_parked_retrieved_is_completed() -> None:
    watch, call, _ = watched()
    call.on_event({"type": "Dial", "peer": {"name": "PJSIP/agent-park-1"},
                   "dialstatus": "ANSWER"})
    park = {"ParkeeUniqueid": CALLER["Uniqueid"], "Parkinglot": "default",
            "ParkingSpace": "701", "ParkerDialString": "PJSIP/agent-park"}
    watch.on_event({"Event": "ParkedCall", **park})
    watch.on_event({"Event": "UnParkedCall", "RetrieverChannel": "PJSIP/agent-answer-2",
                    **park})
    assert call.manifest().outcome == "completed"
    watch.on_event({"Event": "ParkedCall", **park})
    watch.on_event({"Event": "ParkedCallGiveUp", **park})
    m = call.manifest()
    assert [p.result for p in m.parks] == ["retrieved", "caller_hung_up"]
    assert m.outcome == "abandoned" and m.abandoned is not None
    assert m.abandoned.where == "parked"


def test_caller_gone_while_a_plain_dial_rang() -> None:
    _, call, _ = watched()
    call.on_event({"type": "Dial", "peer": {"name": "PJSIP/agent-noanswer-1"},
                   "dialstatus": "", "timestamp": "2026-12-01T10:00:00.000+0000"})
    call.ended_at = datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC)
    m = call.manifest()
    assert m.outcome == "abandoned" and m.abandoned is not None
    assert (m.abandoned.where, m.abandoned.after_s) == ("ringing", 7.0)


def test_events_of_other_channels_change_nothing() -> None:
    watch, call, changed = watched()
    watch.on_event({"Event": "QueueCallerJoin", "Uniqueid": "other", "Queue": "q"})
    watch.on_event({"Event": "ParkedCall", "ParkeeUniqueid": "other"})
    assert call.queues == [] and call.parks == [] and changed == []


def test_directory_wins_then_agent_id_then_member_name_then_endpoint() -> None:
    _, call, _ = watched()
    by_ext, by_member, plain = (call.leg(f"{LOCAL};1"), call.leg("PJSIP/x-00000001"),
                                call.leg("PJSIP/agent-answer-00000002"))
    by_ext.interface, by_ext.member_name = "Local/1001@from-queue/n", "Tanaka"
    by_member.member_name = "Suzuki Ichiro"
    identify(call.agents, {"1001": AgentEntry(id="tanaka", name="Tanaka Aiko")})
    assert (by_ext.agent_id, by_ext.agent_name) == ("tanaka", "Tanaka Aiko")
    assert (by_member.agent_id, by_member.agent_name) == ("Suzuki Ichiro", "Suzuki Ichiro")
    assert plain.agent_id == "agent-answer" and plain.agent_name is None


def test_names_of_local_channels() -> None:
    assert local_base(f"{LOCAL};2") == LOCAL and local_base("PJSIP/a-1") == ""
    assert local_extension("Local/1001@from-queue/n") == "1001"
    assert local_extension("PJSIP/1001") == ""
