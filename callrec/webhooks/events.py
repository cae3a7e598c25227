"""The events' payloads, built from the call manifest (the one contract) wherever they are
emitted, so a receiver sees the same facts under the same names from every service."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from callrec.manifest import CallManifest, RecordingStatus
from callrec.webhooks.outbox import Event
from callrec.webhooks.settings import EventType


def call_facts(m: CallManifest) -> dict[str, Any]:
    """Who and when: the same in every event about a finished call."""
    return {"direction": m.direction.value, "door": m.door, "did": m.did,
            "caller": m.caller.number, "agent": m.agent() or None,
            "agent_name": m.agent_name() or None, "queue": m.queue() or None,
            "outcome": m.outcome, "status": m.status.value, "entered_at": m.entered_at,
            "answered_at": m.answered_at, "ended_at": m.ended_at}


def call_ended(m: CallManifest) -> Event | None:
    """``call.unrecorded`` or ``recording.interrupted`` for a call's manifest (None for a
    recorded call: its ``call.archived`` follows from the uploader)."""
    if m.status is RecordingStatus.UNRECORDED:
        return Event.make(EventType.CALL_UNRECORDED, m.call_id,
                          {**call_facts(m), "reason": _reason(m), "policy": m.policy.value})
    if m.status is RecordingStatus.INTERRUPTED:
        return Event.make(EventType.RECORDING_INTERRUPTED, m.call_id, {
            **call_facts(m), "reason": _reason(m), "notice_played": m.notice.played,
            "recorded_s": m.recording.duration_s if m.recording else None})
    return None


def call_archived(m: CallManifest, bucket: str, manifest_key: str, recording_keys: list[str],
                  manifest_body: bytes) -> Event:
    """The call's objects are in the bucket and verified; one event per manifest version
    (an outcome changed later is archived, and announced, again)."""
    record = m.recording
    version = hashlib.sha256(manifest_body).hexdigest()
    return Event.make(EventType.CALL_ARCHIVED, m.call_id, {
        **call_facts(m), "bucket": bucket, "manifest_key": manifest_key,
        "manifest_sha256": version, "recording_keys": recording_keys,
        "recording_sha256": record.sha256 if record else None,
        "duration_s": record.duration_s if record else None}, key=version)


def call_flagged(call_id: str, flag: str, at: datetime, facts: dict[str, Any]) -> Event:
    """An agent's warning (``agent_warning``) or end of an abusive call (``ended_by_agent``),
    while the call is up: ``facts`` are what the call flow knows then."""
    return Event.make(EventType.CALL_FLAGGED, call_id, {**facts, "flag": flag, "at": at},
                      key=flag, at=at)


def _reason(m: CallManifest) -> str | None:
    return m.status_reason.value if m.status_reason else None
