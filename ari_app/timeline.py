"""A call's timeline: what happened when, and where in the recording.

Most entries are read off facts the manifest already holds (the notice, queue stays, agent legs,
parks, the end); the agents' hot-key actions are kept as they happen (``Call.events``). Built each
time the manifest is, so a call adopted from the journal gets the same timeline. ``offset_s`` is
the place in the recording (MixMonitor starts before the notice: 0 is the recording's start), so
an archive player can seek to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from callrec.manifest import (
    AgentLeg,
    EventKind,
    Notice,
    Park,
    ParkResult,
    Pause,
    QueueVisit,
    Recording,
    TimelineEvent,
)

E = EventKind


def build(notice: Notice, queues: list[QueueVisit], agents: list[AgentLeg], parks: list[Park],
          events: list[TimelineEvent], recording: Recording | None, ended_at: datetime | None,
          caller_hung_up: bool, pauses: Sequence[Pause] = ()) -> list[TimelineEvent]:
    entries = [*_notice(notice), *_queues(queues), *_agents(agents), *_parks(parks),
               *_pauses(pauses), *events]
    if ended_at is not None:
        entries.append(TimelineEvent(at=ended_at, kind=E.CALLER_HUNG_UP if caller_hung_up
                                     else E.ENDED))
    start = recording.started_at if recording else None
    out = []
    for entry in sorted(entries, key=lambda e: e.at):
        offset = None if start is None else round((entry.at - start).total_seconds(), 3)
        out.append(entry.model_copy(update={"offset_s": offset if offset is None or offset >= 0
                                            else None}))
    return out


def _notice(n: Notice) -> Iterator[TimelineEvent]:
    if n.played and n.started_at:
        yield TimelineEvent(at=n.started_at, kind=E.NOTICE_STARTED, detail=n.language)
    if n.played and n.ended_at:
        yield TimelineEvent(at=n.ended_at, kind=E.NOTICE_ENDED,
                            detail="heard in full" if n.completed else "cut short")


def _queues(queues: list[QueueVisit]) -> Iterator[TimelineEvent]:
    for v in queues:
        if v.entered_at:
            yield TimelineEvent(at=v.entered_at, kind=E.QUEUE_ENTERED, detail=v.queue)
        if v.left_at:
            yield TimelineEvent(at=v.left_at, kind=E.QUEUE_LEFT,
                                detail=f"{v.queue}: {v.result.value if v.result else '?'}")


def _agents(agents: list[AgentLeg]) -> Iterator[TimelineEvent]:
    for leg in agents:
        who = leg.agent_id or leg.endpoint
        if leg.offered_at:
            yield TimelineEvent(at=leg.offered_at, kind=E.AGENT_OFFERED, by=who,
                                detail=leg.queue)
        if leg.bridged_at:
            kind = E.AGENT_ANSWERED if leg.offered_at or leg.queue else E.TRANSFERRED
            yield TimelineEvent(at=leg.bridged_at, kind=kind, by=who)
        if leg.left_at:
            yield TimelineEvent(at=leg.left_at, kind=E.AGENT_LEFT, by=who)


def _parks(parks: list[Park]) -> Iterator[TimelineEvent]:
    for p in parks:
        yield TimelineEvent(at=p.parked_at, kind=E.PARKED, by=p.parked_by,
                            detail=f"{p.lot} {p.space}")
        if p.ended_at and p.result is ParkResult.RETRIEVED:
            yield TimelineEvent(at=p.ended_at, kind=E.UNPARKED, by=p.retrieved_by)


def _pauses(pauses: Sequence[Pause]) -> Iterator[TimelineEvent]:
    for p in pauses:
        yield TimelineEvent(at=p.started_at, kind=E.RECORDING_PAUSED, by=p.by,
                            detail=p.source.value)
        if p.ended_at and p.ended_by:
            kind = E.RECORDING_RESUMED if p.resume_proven else E.RESUME_UNPROVEN
            yield TimelineEvent(at=p.ended_at, kind=kind, detail=p.ended_by.value)
