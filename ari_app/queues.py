"""Queues, agents and parking as Asterisk tells them over AMI, applied to the calls callrec follows.

The caller's ARI subscription sees each member app_queue rings (``Dial``) but not the queue, the
member's name, the phone behind a Local member or a parked call. Those come from AMI:

- app_queue (class ``agent``): ``QueueCallerJoin``/``Leave``/``Abandon``, ``AgentCalled`` (queue,
  ``MemberName``, ``Interface``, the member channel), ``AgentConnect``. The caller's channel is the
  event's ``Uniqueid``. ``QueueCallerAbandon`` is sent on a queue timeout too (apps/app_queue.c,
  seen on the bench before ``QUEUESTATUS=TIMEOUT``): only QUEUESTATUS, which the caller's ARI
  subscription delivers (Call._on_varset), says the queue gave up.
- Local members (FreePBX style): ``DialBegin`` of the ``;2`` half names the phone that rang, and a
  ``BridgeEnter`` of that half the channel it was connected to (an app_agent_pool agent's
  ``AgentRequest`` bridges it with the logged-in agent's channel: no Dial at all).
- app_agent_pool (class ``agent``): ``AgentLogin``/``AgentLogoff`` map an agent's channel to the
  agent id (the ``Agents`` action lists who is logged in at each AMI login).
- res_parking (class ``call``): ``ParkedCall``, ``UnParkedCall`` (with the retriever),
  ``ParkedCallGiveUp`` (the caller hung up while parked), ``ParkedCallTimeOut``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ari_app.call import Call
from ari_app.callstate import endpoint_of
from ari_app.outcomes import seconds_between
from callrec.manifest import AgentLeg, Park, ParkResult, QueueResult, QueueVisit

log = logging.getLogger(__name__)

QUEUE_EVENTS = ("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled",
                "AgentConnect")
AGENT_EVENTS = ("AgentLogin", "AgentLogoff", "Agents")
PARK_EVENTS = ("ParkedCall", "UnParkedCall", "ParkedCallGiveUp", "ParkedCallTimeOut")
# AMI Filter regexes (legacy form: any Asterisk since 1.8); the Local-half DialBegin only.
FILTERS = tuple(f"Event: {name}" for name in (*QUEUE_EVENTS, *AGENT_EVENTS, *PARK_EVENTS)) + (
    "Event: DialBegin.*[[:space:]]Channel: Local/",)
EVENTS = frozenset((*QUEUE_EVENTS, *AGENT_EVENTS, *PARK_EVENTS, "DialBegin"))
_KEEP = 2000  # Local halves remembered before their member leg is known (bounded)


def local_base(channel: str) -> str:
    """``Local/1001@ctx-0000002a;1`` -> ``Local/1001@ctx-0000002a`` (both halves share it)."""
    return channel.rpartition(";")[0] if channel.startswith("Local/") else ""


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class RouteWatch:
    """AMI queue, agent and parking events -> the call whose channel they name."""

    def __init__(self, calls: dict[str, Call], changed: Callable[[Call], None]) -> None:
        self.calls = calls  # StasisApp's, by channel id (the caller's Uniqueid)
        self.changed = changed  # journal the call (the manifest will say more)
        self.agents: dict[str, str] = {}  # logged-in app_agent_pool channel -> agent id
        self.legs: OrderedDict[str, AgentLeg] = OrderedDict()  # Local base -> member leg
        self.devices: OrderedDict[str, str] = OrderedDict()  # Local base -> phone channel

    def on_event(self, event: Any) -> None:
        kind = str(event.get("Event") or "")
        if kind == "DialBegin":
            self._device(str(event.get("Channel") or ""), str(event.get("DestChannel") or ""))
        elif kind in ("AgentLogin", "Agents"):
            if str(event.get("Status", "AGENT_LOGGEDIN")) != "AGENT_LOGGEDOFF":
                self.agents[str(event.get("Channel") or "")] = str(event.get("Agent") or "")
        elif kind == "AgentLogoff":
            self.agents = {c: a for c, a in self.agents.items() if a != event.get("Agent")}
        else:
            uid = event.get("ParkeeUniqueid") if "Park" in kind else event.get("Uniqueid")
            call = self.calls.get(str(uid or ""))
            if call is not None and self._apply(call, kind, event, datetime.now(UTC)):
                self.changed(call)

    def on_bridged(self, channels: list[str]) -> None:
        """Two channels bridged (ari_app/bridges.py): a Local member's ``;2`` half meeting its
        phone, or an app_agent_pool agent's channel."""
        for one, other in (channels, channels[::-1]):
            if one.startswith("Local/") and one.endswith(";2") and \
                    not other.startswith("Local/"):
                self._device(one, other)

    def _device(self, half: str, phone: str) -> None:
        base = local_base(half)
        if not base or not phone:
            return
        leg = self.legs.get(base)
        if leg is None:
            _remember(self.devices, base, phone)
            return
        self._set_device(leg, phone)

    def _set_device(self, leg: AgentLeg, phone: str) -> None:
        # A later bridge wins over the ringing phone: the channel the caller really reached.
        leg.device, leg.device_channel = endpoint_of(phone), phone
        agent = self.agents.get(phone)
        if agent:
            leg.agent_id = agent

    def _apply(self, call: Call, kind: str, event: Any, now: datetime) -> bool:
        queue = str(event.get("Queue") or "")
        if kind == "QueueCallerJoin":
            call.enter_queue(QueueVisit(queue=queue, entered_at=now,
                                        position=_int(event.get("Position"))))
        elif kind in ("QueueCallerLeave", "QueueCallerAbandon"):
            visit = call.queue_visit(queue)
            if visit is None:
                return False
            if kind == "QueueCallerAbandon" and visit.result is None:
                visit.result = QueueResult.ABANDONED  # unless QUEUESTATUS says the queue gave up
            visit.left_at = visit.left_at or now  # (QUEUESTATUS, over ARI, may come first)
            if visit.wait_s is None:
                visit.wait_s = seconds_between(visit.entered_at, visit.left_at)
        elif kind in ("AgentCalled", "AgentConnect"):
            self._member(call, kind, event, queue, now)
        else:
            self._park(call, kind, event, now)
        return True

    def _member(self, call: Call, kind: str, event: Any, queue: str, now: datetime) -> None:
        channel = str(event.get("DestChannel") or "")
        leg = call.leg(channel)
        leg.queue, leg.member_name = queue, str(event.get("MemberName") or "") or None
        leg.interface = str(event.get("Interface") or "") or None
        leg.offered_at = leg.offered_at or now
        base = local_base(channel)
        if base:
            _remember(self.legs, base, leg)
            phone = self.devices.pop(base, None)
            if phone:
                self._set_device(leg, phone)
        if kind == "AgentConnect":
            leg.dial_status, leg.answered_at = "ANSWER", leg.answered_at or now
            visit = call.queue_visit(queue)
            if visit is not None:
                visit.result, visit.left_at = QueueResult.ANSWERED, visit.left_at or now
                visit.wait_s = seconds_between(visit.entered_at, now)

    def _park(self, call: Call, kind: str, event: Any, now: datetime) -> None:
        if kind == "ParkedCall":
            call.park(Park(lot=str(event.get("Parkinglot") or ""),
                           space=str(event.get("ParkingSpace") or ""), parked_at=now,
                           parked_by=str(event.get("ParkerDialString") or "") or None))
            return
        park = call.parks[-1] if call.parks and call.parks[-1].result is None else None
        if park is None:
            return
        park.ended_at = now
        if kind == "UnParkedCall":
            park.result = ParkResult.RETRIEVED
            park.retrieved_by = str(event.get("RetrieverChannel") or "") or None
        else:
            park.result = ParkResult.CALLER_HUNG_UP if kind == "ParkedCallGiveUp" \
                else ParkResult.TIMEOUT


def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    while len(store) > _KEEP:
        store.popitem(last=False)
