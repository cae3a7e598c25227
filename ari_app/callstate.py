"""What ARI tells about a call: the channel it came in on, the agents offered and bridged, its
queues and parks, its outcome from the dialplan, its hang-up. The half of a call that events
change (``Dial``, ``ChannelVarset``, ``ChannelHangupRequest``, ``ChannelDestroyed``,
``PlaybackFinished``); :class:`ari_app.call.Call` adds whether it is recorded and its manifest.

After callrec continues the call in the dialplan the channel leaves Stasis, but the app stays
subscribed to it (``channel:<id>``), so ARI still delivers ``Dial`` (agent channel and status),
``ChannelVarset`` (``BRIDGEPEER`` set and cleared as the agent bridges and leaves;
``CALLREC_OUTCOME`` set by the dialplan) and ``ChannelDestroyed`` with the hangup cause.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from ari_app.outcomes import seconds_between
from callrec.manifest import (
    NO_AGENT_RESULTS,
    AgentLeg,
    Direction,
    MarkedCaller,
    Notice,
    Park,
    Party,
    Policy,
    QueueResult,
    QueueVisit,
    TimelineEvent,
)

_CHANNEL_SUFFIX = re.compile(r"-[0-9a-f]{8}(;\d)?$")
# The channel variables whose changes matter to a call (_on_varset). A bridged call sets some 35
# others (DIAL*, *TIME, BRIDGEPVTCALLID, RTPAUDIOQOS*...): stasis.wanted() drops those unparsed.
# QUEUESTATUS: how Queue() ended when the queue gave up (apps/app_queue.c set_queue_result).
WATCHED_VARIABLES = ("BRIDGEPEER", "CALLREC_OUTCOME", "QUEUESTATUS")


def endpoint_of(channel_name: str) -> str:
    """``PJSIP/agent-answer-0000001a`` -> ``agent-answer``."""
    tech_and_name = _CHANNEL_SUFFIX.sub("", channel_name)
    return tech_and_name.split("/", 1)[-1]


def event_time(event: dict[str, Any]) -> datetime | None:
    """When Asterisk created the event (its ``timestamp``), or None."""
    raw = event.get("timestamp")
    if isinstance(raw, str):
        try:  # "2026-11-23T13:25:27.253+0000"; fromisoformat is ~10x cheaper than strptime
            at = datetime.fromisoformat(raw)
        except ValueError:
            return None
        return at.astimezone(UTC) if at.tzinfo else None
    return None


def _ts(event: dict[str, Any]) -> datetime:
    return event_time(event) or datetime.now(UTC)


class CallState:
    """A call's facts as events tell them (changed by its own methods only, as a Call's)."""

    def __init__(self, *, entered_at: datetime, door: str, policy: Policy,
                 channel_id: str, channel_name: str = "", linkedid: str | None = None,
                 did: str | None = None, caller: Party | None = None) -> None:
        self.entered_at = entered_at
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.door = door
        self.policy = policy
        self.did = did
        self.caller = caller or Party()
        self.linkedid = linkedid or channel_id
        self.direction = Direction.INBOUND
        self.notice = Notice()
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.hangup_cause: int | None = None
        self.hangup_cause_text: str | None = None
        self.agents: list[AgentLeg] = []
        self.queues: list[QueueVisit] = []  # ari_app/queues.py
        self.parks: list[Park] = []
        self.queue_hint: str | None = None  # the queue its route leads to (Plan.queue)
        self.dialplan_outcome: str | None = None
        self.agent_outcome: str | None = None  # set by an agent's hot-key (ari_app/hotkeys.py)
        self.events: list[TimelineEvent] = []  # what agents did (the rest: ari_app/timeline.py)
        self.hangup_by_caller = False  # the caller's side hung up (not the PBX, not a bridge)
        self.marked: MarkedCaller | None = None  # a marked caller's treatment (ari_app/flow.py)
        self.failed = False
        self.journaled = False  # handed off: a restart adopts it from the journal
        self.hung_up = asyncio.Event()  # the caller (or anyone) hung up the channel
        self.destroyed = asyncio.Event()
        self.pbx_restarted = False  # its channel went with an Asterisk that has restarted since
        self.playback_done: asyncio.Future[str] | None = None
        self.playback_id = ""  # the playback playback_done waits for

    # -- events -------------------------------------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> bool:
        """Apply one event; True if it changed what the manifest will say about agents or
        outcome (worth journaling)."""
        kind = event.get("type")
        if kind == "Dial":
            return self._on_dial(event)
        if kind == "ChannelVarset":
            return self._on_varset(event)
        if kind == "ChannelHangupRequest":
            # A soft request is the PBX's (a bridge ending, Hangup()); a hard one came from the
            # channel's own side (chan_pjsip queues it on the caller's BYE).
            self.hangup_by_caller = self.hangup_by_caller or not event.get("soft")
            self.hung_up.set()
        elif kind == "ChannelDestroyed":
            self.hangup_cause = event.get("cause")
            self.hangup_cause_text = event.get("cause_txt")
            self.ended_at = _ts(event)
            self.hung_up.set()
            self.destroyed.set()
        elif kind == "PlaybackFinished" and self.playback_done and not self.playback_done.done():
            # Only ours: a channel taken on after a restart may still be finishing the earlier
            # run's notice (StasisApp.rescue_orphans).
            playback = event.get("playback") or {}
            if playback.get("id") == self.playback_id:
                self.playback_done.set_result(playback.get("state", "done"))
        return False

    def ended_unseen(self, pbx_started: datetime | None) -> None:
        """Its channel ended while callrec could not see it (ARI away, callrec down): when is
        told by its recording's close, if any. An Asterisk started after the call entered took
        the channel down with it."""
        self.pbx_restarted = pbx_started is not None and self.entered_at < pbx_started
        self.hung_up.set()
        self.destroyed.set()

    def leg(self, channel_name: str) -> AgentLeg:
        """The leg of the call on this channel (added if new)."""
        for leg in self.agents:
            if leg.channel == channel_name:
                return leg
        leg = AgentLeg(endpoint=endpoint_of(channel_name), channel=channel_name)
        self.agents.append(leg)
        return leg

    def queue_visit(self, queue: str) -> QueueVisit | None:
        """Its last stay in this queue."""
        return next((v for v in reversed(self.queues) if v.queue == queue), None)

    def _on_dial(self, event: dict[str, Any]) -> bool:
        peer = (event.get("peer") or {}).get("name")
        if not peer:
            return False
        leg = self.leg(peer)
        status = event.get("dialstatus") or ""
        if not status:
            leg.offered_at = leg.offered_at or _ts(event)
            return False
        if status in ("RINGING", "PROGRESS"):
            return False
        if status == "CANCEL" and leg.dial_status not in (None, "", "ANSWER"):
            return False  # app_queue cancels a ring that already timed out: NOANSWER stays
        leg.dial_status = status
        if status == "ANSWER":
            leg.answered_at = _ts(event)
        return True

    def _on_varset(self, event: dict[str, Any]) -> bool:
        name, value = event.get("variable"), str(event.get("value", ""))
        if name == "BRIDGEPEER":
            return self._on_bridge_peers(set(filter(None, value.split(","))), _ts(event))
        if name == "CALLREC_OUTCOME" and value and value != self.dialplan_outcome:
            self.dialplan_outcome = value
            return True
        if name == "QUEUESTATUS" and value:
            return self._on_queue_status(value.lower(), _ts(event))
        return False

    def _on_queue_status(self, status: str, now: datetime) -> bool:
        """Queue() returned without an agent. Final, over a QueueCallerAbandon that app_queue
        also sends on a timeout. A queue that refused the caller outright (JOINEMPTY, FULL...)
        sent no QueueCallerJoin: its stay is the route's queue, entered and left now."""
        try:
            result = QueueResult(status)
        except ValueError:
            return False
        open_visits = [v for v in self.queues if v.result in (None, QueueResult.ABANDONED)]
        if open_visits:
            visit = open_visits[-1]
        else:
            visit = QueueVisit(queue=self.queue_hint or "", entered_at=now, wait_s=0.0)
            self.queues.append(visit)
        visit.result, visit.left_at = result, visit.left_at or now
        if visit.wait_s is None:
            visit.wait_s = seconds_between(visit.entered_at, visit.left_at)
        return True

    def _on_bridge_peers(self, peers: set[str], now: datetime) -> bool:
        changed = False
        for peer in peers:
            if not peer.startswith("Local/") and all(leg.channel != peer for leg in self.agents):
                # Bridged without a Dial on this channel: brought in by a transfer (an attended
                # transfer swaps the transferer's consultation call in).
                leg = self.leg(peer)
                leg.dial_status, leg.answered_at = "ANSWER", now
        for leg in self.agents:
            if leg.channel in peers and leg.bridged_at is None:
                leg.bridged_at, changed = now, True
            elif leg.channel not in peers and leg.bridged_at and leg.left_at is None:
                leg.left_at, changed = now, True
        return changed

    def apply_snapshot(self, variables: dict[str, str]) -> None:
        """Catch up after events were lost (restart, websocket drop): the channel's variables
        tell the last dialled agent, its status, the current bridge peer and the outcome.
        Times of what happened meanwhile are unknown and stay unset, except a bridge seen now."""
        peer = variables.get("DIALEDPEERNAME", "")
        if peer:
            leg = self.leg(peer.split("&")[0])
            status = variables.get("DIALSTATUS", "")
            if status and not leg.dial_status:
                leg.dial_status = status
        bridged = variables.get("BRIDGEPEER", "")
        for leg in self.agents:
            if bridged and leg.channel in bridged.split(",") and leg.bridged_at is None:
                leg.bridged_at = datetime.now(UTC)
                leg.answered_at = leg.answered_at or leg.bridged_at
                leg.dial_status = leg.dial_status or "ANSWER"
        outcome = variables.get("CALLREC_OUTCOME", "")
        if outcome:
            self.dialplan_outcome = outcome
        status = variables.get("QUEUESTATUS", "")
        if status and not any(v.result in NO_AGENT_RESULTS for v in self.queues):
            self._on_queue_status(status.lower(), datetime.now(UTC))
