"""The call manifest: one per call that entered callrec, the single contract between the parts.

The call flow writes it into the spool once the call is over and (if recorded) the recording file
is proven closed; the uploader ships it beside the recording; the archive indexes it. Define it
here only and import it everywhere. Bump ``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from callrec.durable import write_atomic
from callrec.ids import OUTCOME_RE

# The recording's part of the contract lives in callrec/manifest/audio.py; import it from here.
from callrec.manifest.audio import (
    CONTENT_TYPES as CONTENT_TYPES,
)
from callrec.manifest.audio import (
    MONO as MONO,
)
from callrec.manifest.audio import (
    STEREO as STEREO,
)
from callrec.manifest.audio import (
    ArchivedAudio as ArchivedAudio,
)
from callrec.manifest.audio import (
    AudioChannel as AudioChannel,
)
from callrec.manifest.audio import (
    AudioCheck as AudioCheck,
)
from callrec.manifest.audio import (
    AudioFormat as AudioFormat,
)
from callrec.manifest.audio import (
    AudioVerdict as AudioVerdict,
)
from callrec.manifest.audio import (
    Recording as Recording,
)
from callrec.manifest.base import _Model
from callrec.manifest.pause import Pause as Pause
from callrec.manifest.pause import PauseEnd as PauseEnd
from callrec.manifest.pause import PauseSource as PauseSource
from callrec.reasons import StatusReason

SCHEMA_VERSION = 1


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class RecordingStatus(StrEnum):
    RECORDED = "recorded"  # verified running before the notice, file proven closed
    UNRECORDED = "unrecorded"  # no recording (policy never, or it could not start): see reason
    INTERRUPTED = "interrupted"  # started and verified, but stopped or broke before the call ended


class Outcome(StrEnum):
    """The outcomes callrec derives. The dialplan (CALLREC_OUTCOME) and ops after wrap-up may set
    others (``complaint``, ``harassment`` ...): any ``[a-z0-9_]{1,32}``."""

    COMPLETED = "completed"  # an agent answered
    ABANDONED_IN_NOTICE = "abandoned_in_notice"  # caller hung up while the notice played
    ABANDONED = "abandoned"  # caller hung up while waiting for an agent
    NO_AGENT = "no_agent"  # agents refused, did not answer or were unavailable
    FAILED = "failed"  # callrec could not take it (policy force, errors), or the PBX lost it
    REFUSED = "refused"  # a marked caller whose treatment is refusal (callrec/s3/marks.py)


class WrapUp(StrEnum):
    """The outcomes ops set after wrap-up that the archive offers (any other
    ``[a-z0-9_]{1,32}`` is accepted too); ``harassment`` is also the agents' end key's."""

    COMPLAINT = "complaint"
    HARASSMENT = "harassment"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


# Every outcome the archive's forms list: callrec's own, then the wrap-up ones.
OUTCOMES: tuple[str, ...] = (*Outcome, *WrapUp)


class Policy(StrEnum):
    FORCE = "force"  # no recording, no call: apology prompt and hang up
    OPTIONAL = "optional"  # no recording: continue without the notice, marked unrecorded
    NEVER = "never"  # neither recording nor notice


_SURROGATE = re.compile("[\ud800-\udfff]")


class Party(_Model):
    """A caller as the network presented them. ``*_raw`` keep exactly what arrived (untrusted:
    render as text only); ``number`` is the normalised form used for search and tags."""

    number_raw: str = ""
    name_raw: str = ""
    number: str = ""

    @field_validator("number_raw", "name_raw")
    @classmethod
    def _encodable(cls, value: str) -> str:
        """A lone surrogate (a JSON ``\\udXXX`` escape) cannot be written as UTF-8: the manifest
        would fail to serialise and the call would have none. It becomes U+FFFD."""
        return _SURROGATE.sub("\ufffd", value)


class Notice(_Model):
    prompt: str | None = None
    language: str | None = None
    played: bool = False
    started_at: datetime | None = None
    ended_at: datetime | None = None
    completed: bool = False  # the caller was still there when the prompt ended


class AgentLeg(_Model):
    """One party the call was offered to or bridged with. ``endpoint`` and ``channel`` are the
    raw channel facts; ``agent_id`` and ``agent_name`` say who the person is (ari_app/agents.py:
    the agent directory, an app_agent_pool agent, the queue member name, else the endpoint)."""

    endpoint: str
    channel: str
    agent_id: str | None = None
    agent_name: str | None = None
    queue: str | None = None  # offered by this queue (app_queue)
    member_name: str | None = None  # the queue member's name (queues.conf member => ...,Name)
    interface: str | None = None  # the member's interface: PJSIP/x, Local/1001@ctx/n, Agent/1001
    device: str | None = None  # the endpoint that rang behind a Local or Agent channel
    device_channel: str | None = None
    offered_at: datetime | None = None
    dial_status: str | None = None
    answered_at: datetime | None = None
    bridged_at: datetime | None = None
    left_at: datetime | None = None
    # The notice played to this party: an outside party a transfer brought into a recorded call
    # hears it before the bridge (the call's own ``notice`` is the one the customer heard).
    notice: Notice | None = None


class QueueResult(StrEnum):
    """How the caller left a queue: answered, abandoned (hung up while waiting), or Asterisk's
    QUEUESTATUS (apps/app_queue.c queue_results), lower-cased."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMEOUT = "timeout"
    FULL = "full"
    JOINEMPTY = "joinempty"
    LEAVEEMPTY = "leaveempty"
    JOINUNAVAIL = "joinunavail"
    LEAVEUNAVAIL = "leaveunavail"
    CONTINUE = "continue"
    WITHDRAW = "withdraw"


# The queue gave up on the caller: no agent could take the call.
NO_AGENT_RESULTS = frozenset({QueueResult.TIMEOUT, QueueResult.FULL, QueueResult.JOINEMPTY,
                              QueueResult.LEAVEEMPTY, QueueResult.JOINUNAVAIL,
                              QueueResult.LEAVEUNAVAIL})


class QueueVisit(_Model):
    """One stay of the caller in an app_queue queue."""

    queue: str
    entered_at: datetime | None = None
    left_at: datetime | None = None
    wait_s: float | None = None  # entered -> answered, or -> left
    position: int | None = None  # on entry
    result: QueueResult | None = None


class ParkResult(StrEnum):
    RETRIEVED = "retrieved"
    CALLER_HUNG_UP = "caller_hung_up"
    TIMEOUT = "timeout"  # nobody retrieved it in time: res_parking sent it on


class Park(_Model):
    """The caller parked (res_parking) by an agent, and what became of it."""

    lot: str = ""
    space: str = ""
    parked_at: datetime
    parked_by: str | None = None  # the parker's channel
    ended_at: datetime | None = None
    retrieved_by: str | None = None  # the channel that picked the call up
    result: ParkResult | None = None


class AbandonPlace(StrEnum):
    NOTICE = "notice"
    QUEUE = "queue"
    RINGING = "ringing"  # an agent's phone was ringing (plain Dial)
    PARKED = "parked"
    WAITING = "waiting"  # anywhere else before an agent answered


class Abandonment(_Model):
    """Where the caller hung up before an agent took the call (outcomes abandoned*)."""

    where: AbandonPlace
    after_s: float | None = None  # how long the caller had waited there
    queue: str | None = None


class EventKind(StrEnum):
    """What a timeline entry says happened (ari_app/timeline.py)."""

    NOTICE_STARTED = "notice_started"
    NOTICE_ENDED = "notice_ended"
    QUEUE_ENTERED = "queue_entered"
    QUEUE_LEFT = "queue_left"
    AGENT_OFFERED = "agent_offered"
    AGENT_ANSWERED = "agent_answered"
    AGENT_LEFT = "agent_left"
    TRANSFERRED = "transferred"  # a party the call was not offered to joined (a transfer)
    PARKED = "parked"
    UNPARKED = "unparked"
    WARNING_PLAYED = "warning_played"  # the agent's hot-key warning, heard by the caller
    WARNING_REFUSED = "warning_refused"  # not played: see detail (no verified recording...)
    ENDED_BY_AGENT = "ended_by_agent"
    END_REFUSED = "end_refused"
    RECORDING_PAUSED = "recording_paused"  # card details: see the manifest's pauses
    RECORDING_RESUMED = "recording_resumed"  # proven to record again (detail: why it ended)
    RESUME_UNPROVEN = "resume_unproven"  # the pause ended, the recording not proven since
    PAUSE_REFUSED = "pause_refused"  # not paused: see detail (disabled here, not recorded...)
    CALLER_HUNG_UP = "caller_hung_up"
    ENDED = "ended"


class TimelineEvent(_Model):
    """One moment of the call; ``offset_s`` is its place in the recording (None: unrecorded,
    or before the recording started)."""

    at: datetime
    kind: EventKind
    offset_s: float | None = None
    by: str | None = None  # the agent (id) or party it concerns
    detail: str | None = None


class MarkedCaller(_Model):
    """The caller was marked (callrec/s3/marks.py) when the call entered: what callrec did."""

    treatment: Literal["supervisor", "warning", "refuse"]
    reason: Literal["manual", "auto"]  # a supervisor marked them, or N calls ended as harassment
    marked_by: str = ""
    marked_at: datetime | None = None
    applied: bool = True  # False: the treatment could not be applied (see detail)
    detail: str = ""


class OutcomeChange(_Model):
    """An outcome set after the call (wrap-up, review), kept as an audit trail."""

    at: datetime
    previous: str
    outcome: str = Field(pattern=OUTCOME_RE)
    by: str = ""


class ChainLink(_Model):
    """This manifest version's place in its writer's ledger (callrec/evidence/): the chain (one
    per host and writer), its sequence number, the SHA-256 of the chain's previous entry (the
    exact bytes of that manifest version; "" for the first) and the key that signs it
    (``host/key_id``; the signature itself travels beside the bytes it signs)."""

    chain: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    seq: int = Field(ge=1)
    prev: str = Field(pattern=r"^([0-9a-f]{64})?$")
    key: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}/[0-9a-f]{16}$")


class CallManifest(_Model):
    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    call_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    direction: Direction = Direction.INBOUND
    # "none": a ledger entry for a bridged call that never reached callrec (ari_app/bridges.py)
    door: Literal["stasis", "agi", "none"] = "stasis"
    asterisk_uniqueid: str
    asterisk_linkedid: str | None = None
    asterisk_channel: str | None = None  # e.g. PJSIP/trunk-00000012
    did: str | None = None
    caller: Party = Field(default_factory=Party)
    policy: Policy
    status: RecordingStatus
    status_reason: StatusReason | None = None
    outcome: str = Field(pattern=OUTCOME_RE)
    # "agent": set by the agent's hot-key (ending a call for harassment, ari_app/hotkeys.py)
    outcome_source: Literal["dialplan", "derived", "ops", "agent"] = "derived"
    outcome_changes: list[OutcomeChange] = Field(default_factory=list)
    agents: list[AgentLeg] = Field(default_factory=list)
    queues: list[QueueVisit] = Field(default_factory=list)
    parks: list[Park] = Field(default_factory=list)
    abandoned: Abandonment | None = None
    timeline: list[TimelineEvent] = Field(default_factory=list)
    marked: MarkedCaller | None = None
    notice: Notice = Field(default_factory=Notice)
    recording: Recording | None = None
    pauses: list[Pause] = Field(default_factory=list)  # the recording muted (card details)
    entered_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None
    hangup_cause_text: str | None = None
    # Set when the version is sealed (signed and chained); None in manifests from before #18.
    chain: ChainLink | None = None

    def to_json(self) -> bytes:
        """The manifest as written to the spool and uploaded (UTF-8, indented)."""
        # A call never paused is written without ``pauses``: the same bytes a release before
        # pauses wrote, so such a release reads it during a rolling upgrade (extra="forbid").
        return self.model_dump_json(indent=2, exclude=None if self.pauses else {"pauses"}
                                    ).encode()

    def write_atomic(self, directory: Path) -> Path:
        """Write ``<call_id>.json`` so a reader never sees half a manifest (tmp, fsync, rename)."""
        return write_atomic(directory, f"{self.call_id}.json", self.to_json())

    def agent_leg(self) -> AgentLeg | None:
        """The first agent who answered (else the first one offered; None if none was)."""
        return next((a for a in self.agents if a.answered_at or a.dial_status == "ANSWER"),
                    self.agents[0] if self.agents else None)

    def agent(self) -> str:
        """The agent's id (the ``agent`` tag and the archive's agent): the person who answered,
        else the first one offered; "" if none was."""
        leg = self.agent_leg()
        return "" if leg is None else leg.agent_id or leg.endpoint

    def agent_name(self) -> str:
        leg = self.agent_leg()
        return "" if leg is None else leg.agent_name or leg.member_name or ""

    def queue(self) -> str:
        """The queue that answered the call, else the last one it entered ("" if none)."""
        answered = [v.queue for v in self.queues if v.result is QueueResult.ANSWERED]
        return (answered or [v.queue for v in self.queues] or [""])[-1]

    def with_outcome(self, outcome: str, by: str, at: datetime) -> CallManifest:
        """A copy with the outcome changed by ops, the change recorded."""
        change = OutcomeChange(at=at, previous=self.outcome, outcome=outcome, by=by)
        return self.model_copy(update={
            "outcome": change.outcome, "outcome_source": "ops",
            "outcome_changes": [*self.outcome_changes, change]})

    @classmethod
    def read(cls, path: Path) -> CallManifest:
        return cls.model_validate_json(path.read_bytes())


_NUMBER_KEEP = re.compile(r"[^0-9+*#]")


def normalise_number(raw: str, max_len: int = 32) -> str:
    """Digits (and a leading +, * and #) of a caller number; everything else dropped.

    Caller IDs come from the network: anything may arrive. The raw value stays in the manifest.
    """
    text = unicodedata.normalize("NFKC", raw)  # full-width digits -> ASCII
    kept = _NUMBER_KEEP.sub("", text)
    if kept.startswith("+"):
        kept = "+" + kept[1:].replace("+", "")
    else:
        kept = kept.replace("+", "")
    return kept[:max_len]
