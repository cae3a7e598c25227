"""What the catalog's rows are, as typed objects: a call (made from its manifest), an audit row,
a web session, and the dashboard's counts per day and per queue.

A call row can always be made again from the manifest in the bucket (``callrec archive sync
--rebuild``); its columns are what ops search and list, nothing the call's page needs (that reads
the manifest itself).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from archive.config import FlagSettings, Role
from archive.flags import joined, manifest_flags
from callrec.manifest import CallManifest, normalise_number
from callrec.numbering import NumberingPlan

# Fields only admins see: where the server keeps things (archive/service.py Archive.visible).
INTERNAL = ("manifest_key", "recording_key", "etag")


@dataclass(frozen=True)
class CallRow:
    call_id: str
    entered_at: datetime
    day: str  # YYYY-MM-DD (UTC), for the dashboard
    caller: str  # normalised digits
    caller_e164: str
    caller_raw: str  # untrusted: render as text only (archive/render.py)
    caller_name: str  # untrusted: render as text only
    agent: str  # the agent who answered (else the first tried)
    agents: list[str]  # every agent offered the call, in order
    did: str
    direction: str
    outcome: str
    status: str
    status_reason: str
    notice_completed: bool
    notice_failed: bool  # the policy wanted a notice the caller did not hear
    duration_s: float
    legal_hold: bool
    manifest_key: str
    recording_key: str | None
    sha256: str | None
    size: int | None
    etag: str
    agent_name: str  # the answering agent's display name
    queue: str  # the queue that answered, else the last one entered
    queue_wait_s: float | None  # the caller's wait in that queue
    abandoned: str  # where the caller gave up (notice, queue, parked...)
    flags: str  # for review (archive/flags.py), comma-separated
    reviewed: str  # "<who> <when>" a supervisor reviewed the flags
    audio: str = ""  # the audio check's verdict (callrec/manifest.py AudioVerdict); "" unchecked

    @property
    def has_recording(self) -> bool:
        return bool(self.recording_key)

    def fields(self, internal: bool = True) -> dict[str, Any]:
        """The row as JSON and CSV show it (without the admins' fields unless ``internal``)."""
        out = asdict(self)
        if not internal:
            for name in INTERNAL:
                del out[name]
        return out

    def agent_keys(self) -> list[str]:
        """What the agent search finds the call by, case-insensitively: every agent's id, and
        the answering agent's display name."""
        keys = [*self.agents, self.agent_name]
        return list(dict.fromkeys(k.strip().casefold() for k in keys if k))


COLUMNS = tuple(f.name for f in fields(CallRow))


def row_for(m: CallManifest, manifest_key: str, etag: str, plan: NumberingPlan,
            legal_hold: bool, flags: FlagSettings | None = None) -> CallRow:
    caller = m.caller.number or normalise_number(m.caller.number_raw)
    ended = m.ended_at or m.entered_at
    queue = m.queue()
    visit = next((v for v in reversed(m.queues) if v.queue == queue), None)
    recorded = m.recording is not None and m.status.value != "unrecorded"
    wanted_notice = m.policy.value != "never"
    played = m.recording.objects()[0] if m.recording else None
    return CallRow(
        call_id=m.call_id, entered_at=m.entered_at.astimezone(UTC),
        day=f"{m.entered_at.astimezone(UTC):%Y-%m-%d}", caller=caller,
        caller_e164=plan.e164(caller), caller_raw=m.caller.number_raw,
        caller_name=m.caller.name_raw, agent=m.agent(),
        agents=[a.agent_id or a.endpoint for a in m.agents], did=m.did or "",
        direction=m.direction.value, outcome=m.outcome, status=m.status.value,
        status_reason=m.status_reason or "", notice_completed=m.notice.completed,
        notice_failed=wanted_notice and not m.notice.completed,
        duration_s=max(0.0, (ended - m.entered_at).total_seconds()), legal_hold=legal_hold,
        manifest_key=manifest_key,
        # The object the archive plays: the WAV, or the transcode the uploader archived.
        recording_key=f"{manifest_key.removesuffix('.json')}.{m.recording.format.value}"
        if m.recording and recorded else None,
        sha256=played[2] if played else None, size=played[1] if played else None,
        etag=etag, agent_name=m.agent_name(),
        queue=queue, queue_wait_s=visit.wait_s if visit else None,
        abandoned=m.abandoned.where.value if m.abandoned else "",
        flags=joined(manifest_flags(m, flags or FlagSettings())), reviewed="",
        audio=check.verdict.value if m.recording and (check := m.recording.audio_check) else "")


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: str  # UTC, ISO 8601 with milliseconds
    actor: str
    role: str
    via: str
    action: str
    call_id: str | None
    detail: str  # JSON
    address: str

    def fields(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SessionRow:
    key: str  # the SHA-256 of the cookie: a copy of the catalog gives no session
    user: str
    role: Role
    csrf: str
    started: float  # time.time()
    last_seen: float
    lang: str | None = None  # the language the user picked (on any browser), if any


@dataclass(frozen=True)
class DayCounts:
    day: str
    recorded: int = 0
    unrecorded: int = 0
    interrupted: int = 0
    notice_failed: int = 0

    @property
    def total(self) -> int:
        return self.recorded + self.unrecorded + self.interrupted


@dataclass(frozen=True)
class QueueCounts:
    """Calls per queue: answered, abandoned in the queue, no agent, unrecorded ("" = calls
    that entered no queue)."""

    queue: str
    calls: int
    answered: int
    abandoned_in_queue: int
    no_agent: int
    unrecorded: int
    average_wait_s: float | None
