"""Call-flow metrics: each manifest counted once, by door, status, reason and notice result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from ari_app.metrics import CallMetrics
from callrec.manifest import CallManifest, Notice, Policy, Recording, RecordingStatus
from tests.helpers import metric


def manifest(status: RecordingStatus, reason: str | None = None, **extra: object) -> CallManifest:
    return CallManifest.model_validate({
        "call_id": "20261123T000000Z-000000000001", "asterisk_uniqueid": "1.1",
        "policy": Policy.OPTIONAL, "status": status, "status_reason": reason,
        "outcome": "completed", "entered_at": datetime.now(UTC), **extra})


def test_counts_by_status_reason_and_notice() -> None:
    metrics = CallMetrics(lambda: 3)
    t = datetime.now(UTC)
    metrics.count(manifest(RecordingStatus.RECORDED, notice=Notice(played=True, completed=True),
                           recording=Recording(path="x", started_at=t,
                                               verified_at=t + timedelta(milliseconds=3))))
    metrics.count(manifest(RecordingStatus.UNRECORDED, "spool_full"))
    metrics.count(manifest(RecordingStatus.INTERRUPTED, "recording_stopped_mid_call",
                           notice=Notice(played=True, completed=False)))
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "callrec_calls_total") == 3
    assert metric(text, 'callrec_unrecorded_calls_total{reason="spool_full"}') == 1
    assert metric(text, "callrec_recordings_interrupted_total") == 1
    assert metric(text, 'callrec_notices_total{result="not_played"}') == 1
    assert metric(text, 'callrec_notices_total{result="cut_short"}') == 1
    assert metric(text, "callrec_recording_verify_seconds_count") == 1
    assert metric(text, "callrec_calls_in_flight") == 3


def test_calls_turned_away_under_policy_force_are_counted_apart() -> None:
    metrics = CallMetrics(lambda: 0)
    metrics.count(manifest(RecordingStatus.UNRECORDED, "ami_unavailable", policy=Policy.FORCE,
                           outcome="failed"))
    metrics.count(manifest(RecordingStatus.UNRECORDED, "ami_unavailable"))  # optional: goes on
    text = generate_latest(metrics.registry).decode()
    assert metric(text, 'callrec_force_refused_calls_total{reason="ami_unavailable"}') == 1
    assert metric(text, 'callrec_unrecorded_calls_total{reason="ami_unavailable"}') == 2
