"""One call's state: what happened to it, gathered from ARI events, and its manifest.

After callrec continues the call in the dialplan the channel leaves Stasis, but the app stays
subscribed to it (``channel:<id>``), so ARI still delivers ``Dial`` (agent channel and status),
``ChannelVarset`` (``BRIDGEPEER`` set and cleared as the agent bridges and leaves;
``CALLREC_OUTCOME`` set by the dialplan) and ``ChannelDestroyed`` with the hangup cause.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

from ari_app.outcomes import Facts, derive, seconds_between
from ari_app.recorder import RecordingFile, VerifiedRecording
from ari_app.timeline import build as timeline
from callrec.ids import is_outcome, new_call_id
from callrec.manifest import (
    NO_AGENT_RESULTS,
    AgentLeg,
    CallManifest,
    Direction,
    EventKind,
    MarkedCaller,
    Notice,
    Park,
    Party,
    Policy,
    QueueResult,
    QueueVisit,
    Recording,
    RecordingStatus,
    TimelineEvent,
    normalise_number,
)
from callrec.reasons import StatusReason

log = logging.getLogger(__name__)

_CHANNEL_SUFFIX = re.compile(r"-[0-9a-f]{8}(;\d)?$")
# The channel variables whose changes matter to a call (_on_varset). A bridged call sets some 35
# others (DIAL*, *TIME, BRIDGEPVTCALLID, RTPAUDIOQOS*...): stasis.wanted() drops those unparsed.
# QUEUESTATUS: how Queue() ended when the queue gave up (apps/app_queue.c set_queue_result).
# Timeline entries kept as they happen (journaled with the call); the rest are read off its facts.
AGENT_EVENTS = frozenset({EventKind.WARNING_PLAYED, EventKind.WARNING_REFUSED,
                          EventKind.ENDED_BY_AGENT, EventKind.END_REFUSED})
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


class Call:
    """A call inside callrec, from entry to its one manifest."""

    def __init__(self, channel: dict[str, Any], door: str, policy: Policy) -> None:
        self.entered_at = datetime.now(UTC)
        self.call_id = new_call_id(self.entered_at)
        self.channel_id: str = channel["id"]
        self.channel_name: str = channel.get("name", "")
        self.door = door
        self.policy = policy
        dialplan = channel.get("dialplan") or {}
        caller = channel.get("caller") or {}
        self.did: str | None = dialplan.get("exten")
        self.caller = Party(number_raw=str(caller.get("number", "")),
                            name_raw=str(caller.get("name", "")),
                            number=normalise_number(str(caller.get("number", ""))))
        self.linkedid: str | None = channel.get("linkedid") or channel.get("id")
        self.direction = Direction.INBOUND
        self.notice = Notice()
        # Whether the call is recorded changes only through mark_recorded (which demands the
        # proof), mark_unrecorded and mark_interrupted: never by assignment from outside.
        self._status = RecordingStatus.UNRECORDED
        self.status_reason: StatusReason | None = None
        self._proof: VerifiedRecording | None = None
        self._file: RecordingFile | None = None  # the recording to finish, proven or adopted
        self._recording: Recording | None = None
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

    # -- whether it is recorded ---------------------------------------------------------------
    @property
    def status(self) -> RecordingStatus:
        return self._status

    @property
    def proof(self) -> VerifiedRecording | None:
        """The proof its recording was verified; None once it is known to have stopped."""
        return self._proof

    @property
    def file(self) -> RecordingFile | None:
        """Its recording's file (set the moment the recording is verified, whatever happens to
        the call afterwards): the end of the call finishes and describes it."""
        return self._file

    @property
    def recording(self) -> Recording | None:
        return self._recording

    def mark_recorded(self, proof: VerifiedRecording) -> None:
        """The one way a call becomes recorded: with the proof of Recorder's rule."""
        if not isinstance(proof, VerifiedRecording):
            raise TypeError("a call is recorded only with a VerifiedRecording")
        self._status, self.status_reason = RecordingStatus.RECORDED, None
        self._proof, self._file, self._recording = proof, proof.file, proof.record()

    def reproven(self, proof: VerifiedRecording) -> None:
        """A recorded call adopted from the journal whose recording was proven again: prompts
        may say so again (its manifest's recording stays as the earlier run recorded it)."""
        if not isinstance(proof, VerifiedRecording) or proof.file != self._file \
                or self._status is not RecordingStatus.RECORDED:
            raise ValueError(f"{self.call_id}: not a proof of this call's recording")
        self._proof = proof

    def mark_unrecorded(self, reason: StatusReason) -> None:
        """Not recorded: a recording proven but closed before anything was said of it is
        dropped (its fragment, like an unverified one's, is not archived). Once a party was
        told, the call can only be interrupted."""
        if self.notice.played:
            raise ValueError(f"{self.call_id} was announced: interrupted, not unrecorded")
        self._status, self.status_reason = RecordingStatus.UNRECORDED, reason
        self._proof = self._file = self._recording = None

    def mark_interrupted(self, reason: StatusReason) -> None:
        """Its recording stopped or broke: the proof is withdrawn, so no prompt tells anyone
        any more that the call is recorded."""
        self._status, self.status_reason, self._proof = RecordingStatus.INTERRUPTED, reason, None

    def recording_closed(self, record: Recording) -> None:
        """Its recording's file, proven closed (or given up on) and described."""
        self._recording = record

    @classmethod
    def restore(cls, m: CallManifest, file: RecordingFile | None) -> Call:
        """A call adopted from the journal after a restart, with the recording file the journal
        names (not a proof: whether it still runs is proven again, ari_app/resync.py)."""
        call = cls({"id": m.asterisk_uniqueid, "linkedid": m.asterisk_linkedid,
                    "name": m.asterisk_channel or "", "dialplan": {"exten": m.did}}, m.door,
                   m.policy)
        call.call_id, call.entered_at, call.caller = m.call_id, m.entered_at, m.caller
        call.direction = m.direction
        call.notice, call._status, call.status_reason = m.notice, m.status, m.status_reason
        call.answered_at, call.agents, call._recording = m.answered_at, m.agents, m.recording
        call.queues, call.parks = m.queues, m.parks
        call._file = file
        call.failed = m.outcome == "failed"
        if m.outcome_source == "dialplan":
            call.dialplan_outcome = m.outcome
        elif m.outcome_source == "agent":
            call.agent_outcome = m.outcome
        call.events = [e for e in m.timeline if e.kind in AGENT_EVENTS]
        call.marked = m.marked
        return call

    def make_outbound(self, customer: str, agent_channel: str) -> None:
        """An agent's outbound call: this channel is the called customer's (Dial's ``U()``
        runs on it once it answers); the agent is the calling channel, already answered."""
        self.direction, self.did = Direction.OUTBOUND, None
        self.caller = Party(number_raw=customer, number=normalise_number(customer))
        if agent_channel:
            now = datetime.now(UTC)
            self.agents = [AgentLeg(endpoint=endpoint_of(agent_channel), channel=agent_channel,
                                    dial_status="ANSWER", answered_at=now)]

    def log_prefix(self) -> str:
        return f"[{self.call_id}]"

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

    def writer_died(self) -> None:
        """Its recording's writer died before finishing the file (ari_app/wavfile.py
        repair_header): the call's last seconds are missing from it, whatever else was seen."""
        self.mark_interrupted(StatusReason.ASTERISK_RESTARTED if self.pbx_restarted
                              else StatusReason.RECORDING_WRITER_DIED)

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

    # -- the result -----------------------------------------------------------------------------
    def journal_entry(self) -> CallManifest:
        """What the journal keeps (ari_app/journal.py): the manifest so far, with only the
        timeline entries ``restore`` reads back (the agents' actions). The rest of the timeline
        is read off facts the entry holds anyway, and building it was most of the cost of a
        journal line (about three per call)."""
        return self.manifest(full_timeline=False)

    def manifest(self, full_timeline: bool = True) -> CallManifest:
        derived, abandoned = derive(Facts(
            self.failed, self.pbx_restarted, self.agents, self.queues, self.parks, self.notice,
            self.answered_at or self.entered_at, self.ended_at,
            refused=bool(self.marked and self.marked.treatment == "refuse"
                         and self.marked.applied)))
        outcome, source = derived.value, "derived"
        if self.agent_outcome:
            outcome, source = self.agent_outcome, "agent"
        elif self.dialplan_outcome:
            if is_outcome(self.dialplan_outcome):
                outcome, source = self.dialplan_outcome, "dialplan"
            else:
                log.warning("%s CALLREC_OUTCOME %r is not [a-z0-9_]{1,32}; using %s",
                            self.log_prefix(), self.dialplan_outcome[:64], outcome)
        return CallManifest(
            call_id=self.call_id, door=self.door, direction=self.direction,
            asterisk_uniqueid=self.channel_id, asterisk_linkedid=self.linkedid,
            asterisk_channel=self.channel_name or None, did=self.did,
            caller=self.caller, policy=self.policy, status=self.status,
            status_reason=self.status_reason, outcome=outcome,
            outcome_source=source,
            agents=self.agents, queues=self.queues, parks=self.parks, abandoned=abandoned,
            timeline=timeline(self.notice, self.queues, self.agents, self.parks, self.events,
                              self.recording, self.ended_at, self.hangup_by_caller)
            if full_timeline else list(self.events),
            marked=self.marked,
            notice=self.notice, recording=self.recording,
            entered_at=self.entered_at, answered_at=self.answered_at, ended_at=self.ended_at,
            hangup_cause=self.hangup_cause, hangup_cause_text=self.hangup_cause_text,
        )
