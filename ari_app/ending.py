"""The end of a call, from its hand-off to its one manifest.

    hand-off (journal) -> watch the recording while the call lasts -> channel destroyed
    -> the file proven closed and described -> manifest written -> journal entry removed

From the hand-off on, a restart adopts the call from the journal (ari_app/journal.py), so a call
cancelled by a shutdown keeps its entry and the next run finishes it: no manifest is ever written
twice, none is ever given up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from collections.abc import Callable
from pathlib import Path

from ari_app import audio_check
from ari_app.call import Call
from ari_app.config import NoticeSettings
from ari_app.journal import InflightJournal, InflightJournalError
from ari_app.metrics import CallMetrics
from ari_app.recorder import Recorder, RecordingFailed, RecordingFile
from ari_app.wavfile import Header
from callrec.aio import first_of
from callrec.backoff import Backoff
from callrec.evidence.chain import SpoolWriter
from callrec.lifecycle import Tasks
from callrec.manifest import AudioVerdict, CallManifest, Recording, RecordingStatus
from callrec.reasons import StatusReason
from callrec.signing import SealError

log = logging.getLogger(__name__)


class JournalBatch:
    """Journal entries queued and appended every 0.2 s (one line per call however many
    events changed it). An append is a write(2) into the page cache, cheaper on the loop than the
    hand-over to a thread would be."""

    def __init__(self, journal: InflightJournal) -> None:
        self.journal = journal
        self.dirty: dict[str, Call] = {}

    def queue(self, call: Call) -> None:
        self.dirty[call.call_id] = call

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.flush()

    def flush(self) -> None:
        batch, self.dirty = self.dirty, {}
        for call in batch.values():
            self.save(call)

    def save(self, call: Call) -> None:
        """Now, not with the batch."""
        self.dirty.pop(call.call_id, None)
        try:
            self.journal.save(call.journal_entry())
        except (OSError, InflightJournalError) as exc:
            log.error("%s journal not written: %s", call.log_prefix(), exc)

    def done(self, call: Call) -> None:
        self.drop(call.call_id)

    def drop(self, call_id: str) -> None:
        """The call's line is no longer wanted (its manifest is written, or nothing of it
        remains to follow)."""
        self.dirty.pop(call_id, None)
        try:
            self.journal.remove(call_id)
        except (OSError, InflightJournalError) as exc:  # the manifest is written: restarts skip it
            log.error("[%s] journal not updated: %s", call_id, exc)


class Sight:
    """Whether callrec sees Asterisk now (ARI connected and calls resynced: events tell all),
    and whether it is shutting down (no more retries that would hold the shutdown up)."""

    def __init__(self) -> None:
        self.in_sight = asyncio.Event()
        self.stopping = asyncio.Event()


class Ending:
    def __init__(self, writer: SpoolWriter, notice: NoticeSettings, recorder: Recorder,
                 journal: JournalBatch, metrics: CallMetrics, sight: Sight, tasks: Tasks,
                 forget: Callable[[Call], None], check_sight: Callable[[Call], None],
                 identify: Callable[[Call], None] = lambda call: None,
                 announce: Callable[[CallManifest], None] = lambda m: None) -> None:
        # Sealed (signed, chained) when evidence is on: callrec/evidence/.
        self.writer, self.notice, self.recorder = writer, notice, recorder
        self.journal, self.metrics, self.sight, self.tasks = journal, metrics, sight, tasks
        self.forget = forget  # its channel's events go nowhere any more (StasisApp.forget)
        self.check_sight = check_sight  # the bridge watch saw it (BridgeWatch.check_sight)
        self.identify = identify  # who its agents are (ari_app/agents.py)
        self.announce = announce  # its webhook event, before the manifest (ari_app/alerts.py)

    def hand_off(self, call: Call) -> None:
        """The flow is done with the call: from now on a restart adopts it from the journal.
        Written at once, not with the 0.2 s batch: the channel has just left Stasis, so a
        restart would not find it there either (StasisApp.rescue_orphans), and a crash before
        this line would leave the call without a manifest."""
        call.mark_journaled()
        self.journal.save(call)

    def follow(self, call: Call) -> None:
        """Follow a handed-off call to its manifest, in its own tracked task."""
        self.tasks.spawn(self.finish(call))

    def ledger(self, call: Call) -> None:
        """A call with nothing left to follow (a bridge ledger entry): its manifest now."""
        self.tasks.spawn(self.final(call))

    async def finish(self, call: Call) -> None:
        """From hand-off to the manifest. Cancelled (shutdown): the journal entry stays and the
        next run finishes the call; no manifest is written twice."""
        file = call.file
        try:
            if file is not None and call.status is RecordingStatus.RECORDED:
                await self._watch_recording(call, file)
            await call.destroyed.wait()
            if file is not None:
                await self._finish_recording(call, file)
        except asyncio.CancelledError:
            self.journal.queue(call)
            self.forget(call)
            raise
        except Exception:
            log.exception("%s call handling failed", call.log_prefix())
            call.note_reason(StatusReason.CALLREC_ERROR)
        await self.final(call)

    async def final(self, call: Call) -> None:
        self.forget(call)
        if call.ended_at is None and call.recording and call.recording.closed_at:
            call.end(call.recording.closed_at)
        self.check_sight(call)
        self.identify(call)
        manifest = call.manifest()
        pauses = Backoff(first=0.5, cap=30.0, jitter=0.0)
        while True:
            try:
                path = await self._write(call, manifest)
                break
            except (OSError, SealError) as exc:
                # A full or failing disk: the call stays in the journal (a restart finishes
                # it) and the write is retried; the manifest is never given up on. Shutting
                # down, the journal alone keeps it: retrying here would hang the shutdown.
                self.journal.queue(call)
                self.metrics.write_failures.inc()
                if self.sight.stopping.is_set():
                    log.error("%s manifest not written: %s; left in the journal for the next "
                              "run", call.log_prefix(), exc)
                    return
                delay = pauses.next()
                log.error("%s manifest not written: %s; retrying in %.1f s", call.log_prefix(),
                          exc, delay)
                await asyncio.sleep(delay)
        self._written(call, manifest, path)

    async def _write(self, call: Call, manifest: CallManifest) -> Path:
        # fsync can take milliseconds: never on the event loop that answers calls. The thread
        # also serialises and signs (~0.1 ms of Python that fights the loop for the GIL, but
        # sealing must hold the chain's lock across the write: callrec/evidence/).
        write = asyncio.ensure_future(asyncio.to_thread(self._announce_and_write, manifest))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            # Shutting down mid-write: the thread finishes it anyway, so finish the
            # bookkeeping too (else the next run would adopt the call and write twice).
            with contextlib.suppress(OSError, SealError):
                self._written(call, manifest, await write)
            raise

    def _announce_and_write(self, manifest: CallManifest) -> Path:
        self.announce(manifest)
        return self.writer.write(manifest)

    def _written(self, call: Call, manifest: CallManifest, path: Path) -> None:
        self.metrics.count(manifest)
        self.journal.done(call)
        notice = manifest.notice
        heard = "not played" if not notice.played else \
            "heard in full" if notice.completed else "cut short"
        log.info("%s manifest %s: %s%s, outcome %s, notice %s", call.log_prefix(), path.name,
                 manifest.status.value, f" ({manifest.status_reason})"
                 if manifest.status_reason else "", manifest.outcome, heard)

    async def _watch_recording(self, call: Call, file: RecordingFile) -> None:
        """Until the channel is destroyed: the recording's file closed while the call is still
        up means MixMonitor stopped early (StopMixMonitor by someone else, a write error), and
        a file that stops growing means it cannot write (a full disk): either way the rest of
        the call is not recorded although the caller was told it would be."""
        closed = self.recorder.watch.closed(file.local_path.name)
        stall_s = self.notice.stall_alert_s
        growth = (-1, time.monotonic())  # (size, when it last changed)
        while not call.destroyed.is_set():
            reason = None
            if self.recorder.is_closed(file):
                reason = StatusReason.RECORDING_STOPPED_MID_CALL
            elif stall_s:
                growth = _growth(file.local_path, growth)
                if time.monotonic() - growth[1] >= stall_s:
                    reason = StatusReason.RECORDING_NOT_GROWING
            if reason is not None:
                await asyncio.sleep(0.5)  # a plain hang-up also closes the file: let it land
                if call.destroyed.is_set() or call.hung_up.is_set():
                    return
                if not self.sight.in_sight.is_set():
                    # ARI is away (Asterisk restarting?): whether the call is still up is
                    # unknown until the resync; look again then.
                    await first_of(self.sight.in_sight.wait(), call.destroyed.wait())
                    continue
                self._interrupted(call, file, reason)
                return
            # The timeout re-probes: a close may have happened while callrec was down.
            await first_of(closed.wait(), call.destroyed.wait(),
                           timeout=min(5.0, stall_s / 2 or 5.0))

    def _interrupted(self, call: Call, file: RecordingFile, reason: StatusReason) -> None:
        call.mark_interrupted(reason)
        log.error("%s ALERT recording interrupted mid-call (%s, MixMonitor %s); the caller was "
                  "told the call is recorded", call.log_prefix(), reason, file.mixmonitor_id)
        self.journal.queue(call)

    async def _finish_recording(self, call: Call, file: RecordingFile) -> None:
        record = call.recording
        assert record is not None  # a call with a file has its recording's record
        try:
            header = await self.recorder.wait_closed(file, record,
                                                     self.notice.close_timeout_s)
            # A raw stream has no header to tell a writer that died (ari_app/rawfile.py): the
            # PBX's restart while the call was up does.
            if header is not Header.FINISHED or (file.stereo and call.pbx_restarted):
                call.writer_died()
                log.error("%s ALERT recording cut off: %s; the caller was told the call is "
                          "recorded", call.log_prefix(), call.status_reason)
            await self._check_audio(call, file, record)
        except RecordingFailed as exc:
            log.error("%s ALERT recording interrupted: %s", call.log_prefix(), exc)
            call.mark_interrupted(exc.reason)
            await self.recorder.describe_partial(file, record)
        call.recording_closed(record)

    async def _check_audio(self, call: Call, file: RecordingFile, record: Recording) -> None:
        """Is anyone heard in the conversation (ari_app/audio_check.py)? Only on a complete
        recording of an answered call; a failure leaves it unchecked, never the call unfinished."""
        settings = self.recorder.recording
        answered = next((a.answered_at for a in call.agents if a.answered_at), None)
        if not settings.audio_check or answered is None or record.started_at is None:
            return
        from_s = max(0.0, (answered - record.started_at).total_seconds())
        try:
            record.audio_check = await asyncio.to_thread(
                audio_check.check, file.wav_path, record.channels, from_s, settings)
        except (OSError, EOFError, wave.Error) as exc:
            log.warning("%s audio not checked: %s", call.log_prefix(), exc)
            return
        verdict = record.audio_check.verdict
        self.metrics.audio_checks.labels(verdict.value).inc()
        if verdict is not AudioVerdict.CLEAN:
            log.warning("%s audio check: %s (speech %s s)", call.log_prefix(), verdict.value,
                        {k.value: v for k, v in record.audio_check.speech_s.items()})


def _growth(path: Path, last: tuple[int, float]) -> tuple[int, float]:
    """(size, when it last changed) of a recording, updated from the file now."""
    try:
        size = path.stat().st_size
    except OSError:
        return last
    return (size, time.monotonic()) if size != last[0] else last
