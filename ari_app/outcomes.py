"""The outcome callrec derives for a call, and where a caller who gave up hung up.

``abandoned`` means the caller hung up before an agent took the call; the manifest's
``abandoned`` says where (in the notice, in a queue after N s, while an agent's phone rang, while
parked) and how long they had waited there. A queue that gave up on the caller (QUEUESTATUS
TIMEOUT, FULL, JOINEMPTY, LEAVEEMPTY, JOINUNAVAIL, LEAVEUNAVAIL) is ``no_agent``, however long
the caller stayed on the line afterwards. Transfers and parking keep a call ``completed`` once an
agent answered, unless the caller hung up while parked and nobody picked the call up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from callrec.manifest import (
    NO_AGENT_RESULTS,
    Abandonment,
    AbandonPlace,
    AgentLeg,
    Notice,
    Outcome,
    Park,
    ParkResult,
    QueueResult,
    QueueVisit,
)

NOT_ANSWERED = {"BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL", "DONTCALL", "TORTURE",
                "INVALIDARGS"}


@dataclass
class Facts:
    """What the outcome depends on (ari_app/call.py gathers it)."""

    failed: bool
    pbx_restarted: bool
    agents: list[AgentLeg]
    queues: list[QueueVisit]
    parks: list[Park]
    notice: Notice
    waiting_since: datetime  # the caller was answered (or entered) then
    ended_at: datetime | None
    refused: bool = False  # a marked caller turned away (ari_app/flow.py)


def derive(f: Facts) -> tuple[Outcome, Abandonment | None]:
    if f.refused:
        return Outcome.REFUSED, None
    if f.failed:
        return Outcome.FAILED, None
    if any(leg.answered_at or leg.dial_status == "ANSWER" for leg in f.agents):
        return _after_answer(f)
    if f.pbx_restarted:  # the caller neither left nor was turned away: Asterisk died
        return Outcome.FAILED, None
    if f.notice.played and not f.notice.completed:
        return Outcome.ABANDONED_IN_NOTICE, Abandonment(
            where=AbandonPlace.NOTICE, after_s=seconds_between(f.notice.started_at, f.ended_at))
    visit = f.queues[-1] if f.queues else None
    if visit is not None and visit.result in NO_AGENT_RESULTS:
        return Outcome.NO_AGENT, None
    if f.agents and all(leg.dial_status in NOT_ANSWERED - {"CANCEL"} for leg in f.agents) and \
            (visit is None or visit.result is not QueueResult.ABANDONED):
        return Outcome.NO_AGENT, None
    return Outcome.ABANDONED, _where(f, visit)


def _after_answer(f: Facts) -> tuple[Outcome, Abandonment | None]:
    park = f.parks[-1] if f.parks else None
    if park is not None and park.result is ParkResult.CALLER_HUNG_UP:
        return Outcome.ABANDONED, Abandonment(
            where=AbandonPlace.PARKED, after_s=seconds_between(park.parked_at, park.ended_at))
    return Outcome.COMPLETED, None


def _where(f: Facts, visit: QueueVisit | None) -> Abandonment:
    if visit is not None and (visit.result is QueueResult.ABANDONED or visit.left_at is None):
        wait = visit.wait_s if visit.wait_s is not None else \
            seconds_between(visit.entered_at, f.ended_at)
        return Abandonment(where=AbandonPlace.QUEUE, after_s=wait, queue=visit.queue)
    rang = [leg for leg in f.agents if leg.dial_status in (None, "", "CANCEL")]
    if rang:  # hung up while an agent's phone rang
        first = min((leg.offered_at for leg in rang if leg.offered_at), default=None)
        return Abandonment(where=AbandonPlace.RINGING, after_s=seconds_between(first, f.ended_at))
    return Abandonment(where=AbandonPlace.WAITING,
                       after_s=seconds_between(f.notice.ended_at or f.waiting_since, f.ended_at))


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """How long from ``start`` to ``end`` (ms precision, never negative), if both are known."""
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)
