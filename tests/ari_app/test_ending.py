"""The end of a call, in-process with fakes (the integration tests run it against the PBX):
hand-off journaled at once, one manifest, the journal entry gone after it; a recording that
stops mid-call is interrupted; a failing disk is retried, never given up; a shutdown leaves
the call to the journal, without a manifest."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from ari_app.call import Call
from ari_app.closewatch import CloseWatch
from ari_app.config import NoticeSettings
from ari_app.ending import Ending, JournalBatch, Sight
from ari_app.journal import InflightJournal
from ari_app.metrics import CallMetrics
from callrec.durable import write_atomic_group
from callrec.evidence.chain import SpoolWriter
from callrec.evidence.settings import EvidenceSettings
from callrec.lifecycle import Tasks
from callrec.manifest import CallManifest, Policy, RecordingStatus
from tests.fakes import CALL_ID, CHANNEL, asterisk_wav, proven, recorder, writing
from tests.helpers import metric

DESTROYED = {"type": "ChannelDestroyed", "channel": {"id": "1.1"}, "cause": 16,
             "cause_txt": "Normal Clearing"}


@dataclass
class Parts:
    spool: Path
    ending: Ending
    journal: InflightJournal
    metrics: CallMetrics
    forgotten: list[Call]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    watch = CloseWatch(tmp_path)
    watch.start()
    rec, _ = recorder(tmp_path, watch=watch)
    journal = InflightJournal(tmp_path)
    journal.open()
    metrics, sight = CallMetrics(lambda: 0), Sight()
    forgotten: list[Call] = []
    sight.in_sight.set()
    writer = SpoolWriter(tmp_path, EvidenceSettings(dir=tmp_path / "evidence", host="h1"))
    ending = Ending(writer, NoticeSettings(stall_alert_s=0, close_timeout_s=2), rec,
                    JournalBatch(journal), metrics, sight, Tasks(),
                    forget=forgotten.append, check_sight=lambda call: None)
    yield Parts(tmp_path, ending, journal, metrics, forgotten)
    await ending.tasks.cancel()
    journal.close()
    watch.close()


def new_call() -> Call:
    return Call.from_stasis({"id": "1.1", "name": CHANNEL}, Policy.OPTIONAL)


def journaled(parts: Parts) -> dict[str, str]:
    """The calls the journal on disk holds in flight (what a restart would adopt), with the
    outcome of their newest entry."""
    live: dict[str, str] = {}
    for line in parts.journal.path.read_text().splitlines():
        entry = json.loads(line)
        if "done" in entry:
            live.pop(entry["done"], None)
        else:
            live[entry["call_id"]] = entry["outcome"]
    return live


async def test_one_manifest_after_the_hang_up_and_the_journal_entry_gone(parts: Parts) -> None:
    call = new_call()
    parts.ending.hand_off(call)
    assert list(journaled(parts)) == [call.call_id]  # at once, not with the batch
    finishing = asyncio.ensure_future(parts.ending.finish(call))
    await asyncio.sleep(0.05)
    assert not (parts.spool / f"{call.call_id}.json").exists()
    call.on_event(DESTROYED)
    await asyncio.wait_for(finishing, 2)
    m = CallManifest.read(parts.spool / f"{call.call_id}.json")
    assert (m.status, m.hangup_cause) == ("unrecorded", 16)
    assert journaled(parts) == {} and parts.forgotten == [call]
    assert metric_value(parts, 'callrec_calls_total{door="stasis",status="unrecorded"}') == 1


async def test_a_recording_that_stops_mid_call_is_interrupted(parts: Parts) -> None:
    call = new_call()
    rec = parts.ending.recorder
    # A header as MixMonitor leaves it when stopped (finished), audio after it.
    with writing(rec.paths(CALL_ID)[1], asterisk_wav(1600) + bytes(1600)) as fd:
        call.mark_recorded(await proven(rec, rec.ami))  # type: ignore[arg-type]
        parts.ending.hand_off(call)
        finishing = asyncio.ensure_future(parts.ending.finish(call))
        await asyncio.sleep(0.1)
        os.close(fd)  # StopMixMonitor by someone else: the call goes on
        await asyncio.sleep(1.0)
    assert call.status is RecordingStatus.INTERRUPTED and call.proof is None
    call.on_event(DESTROYED)
    await asyncio.wait_for(finishing, 3)
    m = CallManifest.read(parts.spool / f"{call.call_id}.json")
    assert (m.status, m.status_reason) == ("interrupted", "recording_stopped_mid_call")
    assert m.recording is not None and m.recording.sha256 and m.recording.closed_at
    assert metric_value(parts, "callrec_recordings_interrupted_total") == 1


async def test_a_failing_disk_is_retried_until_the_manifest_is_written(
        parts: Parts, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = [OSError(28, "No space left on device")] * 2
    real = write_atomic_group

    def full_disk(directory: Path, files: list[tuple[str, bytes]]) -> list[Path]:
        if failures:
            raise failures.pop()
        return real(directory, files)

    monkeypatch.setattr("callrec.evidence.chain.write_atomic_group", full_disk)
    monkeypatch.setattr("ari_app.ending.Backoff.next", lambda self: 0.01)
    call = new_call()
    call.on_event(DESTROYED)
    await asyncio.wait_for(parts.ending.final(call), 2)
    written = CallManifest.read(parts.spool / f"{call.call_id}.json")
    assert metric_value(parts, "callrec_manifest_write_failures_total") == 2
    # The failed attempts took no place in the chain: the manifest is its first entry.
    assert written.chain is not None and (written.chain.seq, written.chain.prev) == (1, "")
    assert [e.seq for e in parts.ending.writer.chain.entries()] == [1]  # type: ignore[union-attr]


async def test_a_shutdown_leaves_the_call_to_the_journal(parts: Parts) -> None:
    call = new_call()
    parts.ending.hand_off(call)
    finishing = asyncio.ensure_future(parts.ending.finish(call))
    await asyncio.sleep(0.05)
    call.dialplan_outcome = "complaint"  # changed since the hand-off, not journaled yet
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    parts.ending.journal.flush()
    assert not (parts.spool / f"{call.call_id}.json").exists()
    assert journaled(parts) == {call.call_id: "complaint"}  # the next run finishes it


def metric_value(parts: Parts, name: str) -> float:
    return metric(generate_latest(parts.metrics.registry).decode(), name)
