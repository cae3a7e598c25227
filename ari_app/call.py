"""One call inside callrec, from entry to its one manifest: how it was made (named
constructors), whether it is recorded (only with the proof), what the flow did to it, and its
manifest. What ARI events tell of it is its base, ari_app/callstate.py."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from ari_app.callstate import CallState, endpoint_of
from ari_app.outcomes import Facts, derive
from ari_app.recorder import RecordingFile, VerifiedRecording
from ari_app.timeline import build as timeline
from callrec.ids import call_id_time, is_outcome, new_call_id
from callrec.manifest import (
    AgentLeg,
    CallManifest,
    Direction,
    EventKind,
    MarkedCaller,
    Notice,
    Park,
    Party,
    Pause,
    PauseEnd,
    Policy,
    QueueVisit,
    Recording,
    RecordingStatus,
    TimelineEvent,
    normalise_number,
)
from callrec.reasons import StatusReason

log = logging.getLogger(__name__)

# Timeline entries kept as they happen (journaled with the call); the rest are read off its facts.
AGENT_EVENTS = frozenset({EventKind.WARNING_PLAYED, EventKind.WARNING_REFUSED,
                          EventKind.ENDED_BY_AGENT, EventKind.END_REFUSED,
                          EventKind.PAUSE_REFUSED})


class Call(CallState):
    """A call inside callrec, from entry to its one manifest.

    Made by a named constructor only: a channel entering Stasis (``from_stasis``), a FastAGI
    request (``from_agi``), a channel taken on after a restart with its recording still running
    (``taken_on``), a bridge the safety net saw (``from_bridge``), a journal line
    (``restore``). Its id is set once, there; what happens to it afterwards is changed by its
    own methods only (tests/ari_app/test_call.py holds every other module to that)."""

    def __init__(self, *, call_id: str, entered_at: datetime, door: str, policy: Policy,
                 channel_id: str, channel_name: str = "", linkedid: str | None = None,
                 did: str | None = None, caller: Party | None = None) -> None:
        super().__init__(entered_at=entered_at, door=door, policy=policy,
                         channel_id=channel_id, channel_name=channel_name, linkedid=linkedid,
                         did=did, caller=caller)
        self._call_id = call_id
        # Whether the call is recorded changes only through mark_recorded (which demands the
        # proof), mark_unrecorded and mark_interrupted: never by assignment from outside.
        self._status = RecordingStatus.UNRECORDED
        self.status_reason: StatusReason | None = None
        self._proof: VerifiedRecording | None = None
        self._file: RecordingFile | None = None  # the recording to finish, proven or adopted
        self._recording: Recording | None = None
        self.pauses: list[Pause] = []  # changed by pause/resumed/resume_unproven only

    @property
    def call_id(self) -> str:
        return self._call_id

    # -- named constructors ---------------------------------------------------------------------
    @classmethod
    def from_stasis(cls, channel: dict[str, Any], policy: Policy) -> Call:
        """A channel entering Stasis (the ARI channel of its ``StasisStart``)."""
        entered = datetime.now(UTC)
        return cls._from_channel(channel, policy, new_call_id(entered), entered)

    @classmethod
    def taken_on(cls, channel: dict[str, Any], policy: Policy, proof: VerifiedRecording,
                 earlier: CallManifest | None = None) -> Call:
        """A channel an earlier run left in Stasis whose recording still verifies: the call
        keeps that recording's id (its manifest joins the file), recorded from the start.
        ``earlier``: that run's journal line of the call (its notice had begun): the manifest
        keeps when the recording started and was first proven, before that notice."""
        entered = min(call_id_time(proof.file.call_id), datetime.now(UTC))
        call = cls._from_channel(channel, policy, proof.file.call_id, entered)
        call.mark_recorded(proof)
        first = earlier.recording if earlier and earlier.call_id == call.call_id else None
        now = call._recording
        if earlier is not None and first is not None and first.verified_at is not None and \
                now is not None:
            call.entered_at, call.answered_at = earlier.entered_at, earlier.answered_at
            call._recording = now.model_copy(update={  # (the same file)
                "started_at": first.started_at, "verified_at": first.verified_at})
        return call

    @classmethod
    def _from_channel(cls, channel: dict[str, Any], policy: Policy, call_id: str,
                      entered: datetime) -> Call:
        caller = channel.get("caller") or {}
        number = str(caller.get("number", ""))
        return cls(call_id=call_id, entered_at=entered, door="stasis", policy=policy,
                   channel_id=str(channel["id"]), channel_name=str(channel.get("name", "")),
                   linkedid=channel.get("linkedid"),
                   did=(channel.get("dialplan") or {}).get("exten"),
                   caller=Party(number_raw=number, name_raw=str(caller.get("name", "")),
                                number=normalise_number(number)))

    @classmethod
    def from_agi(cls, channel_id: str, channel_name: str, did: str | None, caller: Party,
                 policy: Policy, linkedid: str | None = None) -> Call:
        """A FastAGI request (ari_app/agi.py reads its headers)."""
        entered = datetime.now(UTC)
        return cls(call_id=new_call_id(entered), entered_at=entered, door="agi", policy=policy,
                   channel_id=channel_id, channel_name=channel_name, linkedid=linkedid, did=did,
                   caller=caller)

    @classmethod
    def from_bridge(cls, channel_id: str, linkedid: str | None, channel_name: str,
                    caller: Party, entered_at: datetime, policy: Policy, reason: StatusReason,
                    agents: list[AgentLeg], ended_at: datetime | None) -> Call:
        """A bridge (or an unbridged call) the safety net saw without callrec: unrecorded for
        ``reason``, its other parties as ``agents`` (ari_app/bridges.py). Its key's date is
        the entry date."""
        call = cls(call_id=new_call_id(entered_at), entered_at=entered_at, door="none",
                   policy=policy, channel_id=channel_id, channel_name=channel_name,
                   linkedid=linkedid, caller=caller)
        call.answered_at = entered_at if agents else None
        call.agents, call.ended_at = agents, ended_at
        call.mark_unrecorded(reason)
        return call

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

    # -- its recording's pauses (ari_app/pause.py) ----------------------------------------------
    @property
    def paused(self) -> Pause | None:
        """The pause in effect, if any."""
        last = self.pauses[-1] if self.pauses else None
        return last if last is not None and last.ended_at is None else None

    def live_agents(self) -> frozenset[str]:
        """The channels of the parties bridged with the caller now."""
        return frozenset(leg.channel for leg in self.agents
                         if leg.bridged_at and leg.left_at is None)

    def pause(self, pause: Pause) -> None:
        """Its recording is being muted: the proof is withdrawn until the recording is proven
        to record again, so no prompt says the call is recorded meanwhile."""
        if self._proof is None or self.paused is not None:
            raise ValueError(f"{self.call_id}: no running recording to pause")
        self._proof = None
        self.pauses.append(pause)

    def resumed(self, proof: VerifiedRecording, ended_by: PauseEnd, at: datetime,
                detail: str | None = None) -> None:
        """Its recording was unmuted and proven by Recorder's rule again."""
        if not isinstance(proof, VerifiedRecording) or proof.file != self._file:
            raise ValueError(f"{self.call_id}: not a proof of this call's recording")
        self._end_pause(ended_by, at, proven=True, detail=detail)
        self._proof = proof

    def resume_unproven(self, ended_by: PauseEnd, at: datetime, detail: str) -> None:
        """The pause ended and the recording could not be proven since: the call is no longer
        recorded as far as anyone may be told."""
        self._end_pause(ended_by, at, proven=False, detail=detail)
        if self._status is RecordingStatus.INTERRUPTED:
            return  # already known to have stopped (mid-call, during the pause): that reason
        self.mark_interrupted(StatusReason.RECORDING_NOT_RESUMED)

    def _end_pause(self, ended_by: PauseEnd, at: datetime, proven: bool,
                   detail: str | None = None) -> None:
        pause = self.paused
        if pause is None:
            raise ValueError(f"{self.call_id}: not paused")
        self.pauses[-1] = pause.model_copy(update={
            "ended_at": at, "ended_by": ended_by, "resume_proven": proven,
            "detail": detail or pause.detail})

    def _placed_pauses(self) -> list[Pause]:
        """Its pauses placed in the recording; one still open when the call ended ended with
        it (a hang-up during the pause)."""
        start = self.recording.started_at if self.recording else None
        out = []
        for p in self.pauses:
            if p.ended_at is None and self.ended_at is not None:
                p = p.model_copy(update={"ended_at": self.ended_at,
                                         "ended_by": PauseEnd.HANGUP})
            out.append(p.placed(start))
        return out

    def recording_closed(self, record: Recording) -> None:
        """Its recording's file, proven closed (or given up on) and described."""
        self._recording = record

    @classmethod
    def restore(cls, m: CallManifest, file: RecordingFile | None) -> Call:
        """A call adopted from the journal after a restart, with the recording file the journal
        names (not a proof: whether it still runs is proven again, ari_app/resync.py)."""
        call = cls(call_id=m.call_id, entered_at=m.entered_at, door=m.door, policy=m.policy,
                   channel_id=m.asterisk_uniqueid, channel_name=m.asterisk_channel or "",
                   linkedid=m.asterisk_linkedid, did=m.did, caller=m.caller)
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
        call.pauses = list(m.pauses)
        call.journaled = True
        return call

    # -- what happens to it ---------------------------------------------------------------------
    def follow_plan(self, policy: Policy, queue: str | None) -> None:
        """The policy and queue of the route the flow chose for it (Plan)."""
        self.policy, self.queue_hint = policy, queue

    def answer(self) -> None:
        self.answered_at = datetime.now(UTC)

    def mark_caller(self, marked: MarkedCaller) -> None:
        """A marked caller's treatment, as applied at entry (ari_app/flow.py)."""
        self.marked = marked

    def noticed(self, notice: Notice) -> None:
        """What its notice did (ari_app/announce.py plays it, only with the proof)."""
        self.notice = notice

    def fail(self) -> None:
        """callrec could not take it (policy force, errors): its outcome is ``failed``."""
        self.failed = True

    def add_event(self, event: TimelineEvent) -> None:
        """An agent's action on it (a warning played or refused, an end refused)."""
        self.events.append(event)

    def end_by_agent(self, outcome: str, event: TimelineEvent) -> None:
        """An agent ended it with their key: the outcome the key gives, on the timeline."""
        self.agent_outcome = outcome
        self.events.append(event)

    def enter_queue(self, visit: QueueVisit) -> None:
        self.queues.append(visit)

    def park(self, park: Park) -> None:
        self.parks.append(park)

    def expect_playback(self, playback_id: str) -> asyncio.Future[str]:
        """The playback ``playback_id`` about to start on its channel: the future its
        ``PlaybackFinished`` resolves."""
        self.playback_id = playback_id
        self.playback_done = asyncio.get_running_loop().create_future()
        return self.playback_done

    def mark_journaled(self) -> None:
        """Handed off: from now on a restart adopts it from the journal."""
        self.journaled = True

    def note_reason(self, reason: StatusReason) -> None:
        """Why it is not (or no longer) recorded, unless a reason is known already."""
        self.status_reason = self.status_reason or reason

    def end(self, at: datetime | None) -> None:
        """When it ended, as far as callrec knows (None: not known yet)."""
        self.ended_at = at

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

    def writer_died(self) -> None:
        """Its recording's writer died before finishing the file (ari_app/wavfile.py
        repair_header): the call's last seconds are missing from it, whatever else was seen."""
        self.mark_interrupted(StatusReason.ASTERISK_RESTARTED if self.pbx_restarted
                              else StatusReason.RECORDING_WRITER_DIED)

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
        pauses = self._placed_pauses()
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
                              self.recording, self.ended_at, self.hangup_by_caller, pauses)
            if full_timeline else list(self.events),
            pauses=pauses,
            marked=self.marked,
            notice=self.notice, recording=self.recording,
            entered_at=self.entered_at, answered_at=self.answered_at, ended_at=self.ended_at,
            hangup_cause=self.hangup_cause, hangup_cause_text=self.hangup_cause_text,
        )
