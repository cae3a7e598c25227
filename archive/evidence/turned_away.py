"""The ledger entry of a call that came to callrec's door while callrec was down and ended before
it was back: nobody but Asterisk saw it, so its facts come from Asterisk's CDRs
(archive/evidence/reconcile.py). The caller phoned the company and was turned away, or talked
unrecorded and untold; the entry says which, sealed like every other version, so that
``archive verify`` and evidence bundles cover it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from archive.evidence.reconcile import CdrRow
from callrec.ids import new_call_id
from callrec.manifest import (
    AgentLeg,
    CallManifest,
    Direction,
    EventKind,
    Outcome,
    Party,
    Policy,
    RecordingStatus,
    TimelineEvent,
    normalise_number,
)
from callrec.reasons import StatusReason

_CLID_NAME = re.compile(r'^"(.*)" <[^>]*>$')


def ledger_entry(rows: list[CdrRow], linkedid: str, policy: str, did: str,
                 is_trunk: Callable[[str], bool]) -> CallManifest:
    """The entry of the call whose CDR rows (one linked id) are ``rows``; ``policy`` and
    ``did`` from the dialplan's app-down mark."""
    rows = sorted(rows, key=lambda r: r.start)
    caller_row = next((r for r in rows if is_trunk(r.channel)), None)
    outbound = caller_row is None  # an agent called out: the trunk party is the called one
    first = caller_row or rows[0]
    number = first.dst if outbound else first.src
    agents = [_leg(r) for r in rows if r.dstchannel and not r.dstchannel.startswith("Local/")
              and not is_trunk(r.dstchannel)]
    answered = [a for a in agents if a.answered_at is not None]
    ends = [r.end for r in rows if r.end is not None]
    ended = max(ends) if ends else None
    name = _CLID_NAME.match(first.clid)
    return CallManifest(
        call_id=new_call_id(first.start),
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND, door="none",
        asterisk_uniqueid=first.uniqueid, asterisk_linkedid=linkedid or None,
        asterisk_channel=first.dstchannel if outbound else first.channel,
        did=None if outbound else did or first.dst,
        caller=Party(number_raw=number, name_raw=name.group(1) if name else "",
                     number=normalise_number(number)),
        policy=Policy.FORCE if policy == "force" else Policy.OPTIONAL,
        status=RecordingStatus.UNRECORDED, status_reason=StatusReason.APP_DOWN,
        outcome=_outcome(policy, bool(answered or outbound and first.answer)), agents=agents,
        timeline=[TimelineEvent(at=ended, kind=EventKind.ENDED,
                                detail="callrec was down: from Asterisk's CDR")] if ended else [],
        entered_at=first.start, answered_at=first.answer, ended_at=ended)


def _leg(row: CdrRow) -> AgentLeg:
    endpoint = row.dstchannel.split("/", 1)[-1].rsplit("-", 1)[0]
    answered = row.answer if row.disposition == "ANSWERED" else None
    return AgentLeg(endpoint=endpoint, channel=row.dstchannel, offered_at=row.start,
                    dial_status="ANSWER" if answered else row.disposition.replace(" ", ""),
                    answered_at=answered, bridged_at=answered, left_at=row.end)


def _outcome(policy: str, answered: bool) -> str:
    if policy == "force":
        return Outcome.FAILED  # the apology, then the hang-up (dialplan: callrec-app-down)
    return Outcome.COMPLETED if answered else Outcome.NO_AGENT
