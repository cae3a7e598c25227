"""The safety net's decisions on AMI bridge events, without a PBX."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ari_app.bridges import BridgeParty, BridgeWatch
from ari_app.call import Call
from ari_app.config import BridgeSettings
from callrec.manifest import Policy


def event(kind: str, bridge: str, uniqueid: str, channel: str, linkedid: str | None = None,
          number: str = "0312345678") -> dict[str, Any]:
    return {"Event": kind, "BridgeUniqueid": bridge, "Uniqueid": uniqueid,
            "Linkedid": linkedid or uniqueid, "Channel": channel, "CallerIDNum": number,
            "CallerIDName": "<unknown>"}


def run(events: list[dict[str, Any]], followed: frozenset[str] | set[str] = frozenset(),
        **settings: Any) -> list[Call]:
    written: list[Call] = []
    watch = BridgeWatch(BridgeSettings(**settings),
                        lambda p: p.uniqueid in followed or p.linkedid in followed,
                        written.append)
    for e in events:
        watch.on_event(e)
    watch.flush()
    return written


def pair(a: tuple[str, str, str], b: tuple[str, str, str]) -> list[dict[str, Any]]:
    """Two channels (uniqueid, linkedid, name) bridged, then both leave."""
    return [event("BridgeEnter", "b1", a[0], a[2], a[1]),
            event("BridgeEnter", "b1", b[0], b[2], b[1]),
            event("BridgeLeave", "b1", a[0], a[2], a[1]),
            event("BridgeLeave", "b1", b[0], b[2], b[1])]


TRUNK = ("1.1", "1.1", "PJSIP/trunk-00000001")
AGENT = ("1.2", "1.1", "PJSIP/agent-answer-00000002")


def test_trunk_call_not_through_callrec_is_listed_with_the_customer_first() -> None:
    [call] = run(pair(AGENT, TRUNK))
    m = call.manifest()
    assert (m.status, m.status_reason, m.policy) == ("unrecorded", "not_routed_through_callrec",
                                                     Policy.FORCE)
    assert m.door == "none" and m.asterisk_channel == TRUNK[2]
    assert m.caller.number == "0312345678" and m.caller.name_raw == ""  # <unknown> dropped
    assert [a.endpoint for a in m.agents] == ["agent-answer"] and m.ended_at is not None


def test_internal_call_follows_the_internal_policy() -> None:
    caller, callee = ("2.1", "2.1", "PJSIP/alice-00000003"), ("2.2", "2.1", "PJSIP/bob-00000004")
    [call] = run(pair(callee, caller))
    assert call.status_reason == "internal_call" and call.policy is Policy.NEVER
    assert call.channel_name == caller[2]  # the one who started the call
    [strict] = run(pair(caller, callee), internal_policy="force")
    assert strict.status_reason == "not_routed_through_callrec"


@pytest.mark.parametrize("followed", [{"1.1"}, {"1.2"}])
def test_calls_callrec_follows_and_local_channels_are_skipped(followed: set[str]) -> None:
    assert run(pair(AGENT, TRUNK), followed) == []
    local = ("3.1", "3.1", "Local/2002@agents-00000001;2")
    assert run(pair(local, AGENT)) == []


def test_a_bridge_still_up_at_shutdown_is_written_without_an_end() -> None:
    [call] = run(pair(TRUNK, AGENT)[:2])
    assert call.ended_at is None and call.status_reason == "not_routed_through_callrec"


def test_party_from_event_cleans_unknowns() -> None:
    p = BridgeParty.from_event({"Uniqueid": "1", "Linkedid": "(null)", "Channel": "X",
                          "CallerIDNum": "<unknown>"})
    assert (p.linkedid, p.number, p.name) == ("", "", "")


def test_a_blind_safety_net_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    watch = BridgeWatch(BridgeSettings(), lambda p: False, lambda c: None)
    call = Call.from_stasis({"id": "1.1", "name": TRUNK[2]}, Policy.FORCE)
    watch.logged_in(call.entered_at - timedelta(seconds=10))
    watch.check_sight(call)  # not bridged: nothing to conclude
    assert not watch.warned and not caplog.records
    call.leg(AGENT[2]).bridged_at = call.entered_at
    watch.check_sight(call)
    watch.check_sight(call)
    assert watch.warned and [r.levelname for r in caplog.records] == ["ERROR"]  # once
    seeing = BridgeWatch(BridgeSettings(), lambda p: False, lambda c: None)
    seeing.on_event(event("BridgeEnter", "b1", *TRUNK[:1], TRUNK[2]))
    seeing.check_sight(call)
    assert not seeing.warned and len(caplog.records) == 1


def test_a_bridge_made_before_the_ami_session_is_no_sign_of_blindness(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a restart, a call adopted from the journal was bridged before callrec (and its AMI
    session) was back: no BridgeEnter could come for it, and none is missing."""
    watch = BridgeWatch(BridgeSettings(), lambda p: False, lambda c: None)
    call = Call.from_stasis({"id": "1.1", "name": TRUNK[2]}, Policy.FORCE)
    call.leg(AGENT[2]).bridged_at = call.entered_at
    watch.check_sight(call)  # no AMI session yet
    watch.logged_in(call.entered_at + timedelta(seconds=5))
    watch.check_sight(call)
    assert not watch.warned and not caplog.records
    # bridged while logged in, and no event came: blind
    call.leg("PJSIP/agent-two-00000003").bridged_at = call.entered_at + timedelta(seconds=9)
    watch.check_sight(call)
    assert watch.warned
