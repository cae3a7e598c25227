"""Start MixMonitor over AMI, prove it records, and prove the file complete after the call.

``Response: Success`` to the AMI MixMonitor action does not prove a recording: app_mixmonitor.c
publishes the start and sets MIXMONITOR_FILENAME even when the recording thread then fails to open
the file. So a recording is proven by one rule (``_unproven``), for a fresh start and for one an
earlier run of callrec started (``resume``): the MixMonitor ID (option ``i()``), its datastore
answering ``MIXMONITOR(<id>,filename)`` with our file, the file on disk with its WAV header
(written once the thread runs) and still open for writing. The rule's only product is a
``VerifiedRecording``: nothing else may make one, and only a call holding one may be told it is
recorded (ari_app/announce.py).

There is no MixMonitorStop event on a plain hang-up, and the WAV header sizes are written only on
close: the file is complete once no writer has it open any more, which the kernel proves
(ari_app/closewatch.py) - not a timer, and not a ``Command`` hook (a fork of Asterisk per call).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from ari_app import AriAppError
from ari_app.ami import AmiClient, AmiError, AmiNotConnected, AmiRefused
from ari_app.closewatch import CloseWatch, writer_open
from ari_app.config import RecordingSettings, SpoolSettings
from ari_app.rawfile import stereo_refusal, wrap
from ari_app.wavfile import Header, describe, has_wav_header, modified_at
from callrec.backoff import Backoff
from callrec.ids import is_call_id
from callrec.manifest import MONO, STEREO, Recording
from callrec.reasons import StatusReason

log = logging.getLogger(__name__)

ID_VAR = "CALLREC_MIXMON_ID"
_SEAL = object()  # only this module's rule makes a VerifiedRecording


class RecordingFailed(AriAppError):
    """The recording could not be started or verified; ``reason`` goes into the manifest."""

    def __init__(self, reason: StatusReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def now() -> datetime:
    return datetime.now(UTC)


def spool_problem(spool: SpoolSettings) -> tuple[StatusReason, str] | None:
    """(reason, detail) if the spool cannot take a recording now, else None."""
    local = spool.local
    if not local.is_dir():
        return StatusReason.SPOOL_MISSING, f"{local} does not exist"
    if not os.access(local, os.W_OK | os.X_OK):
        return StatusReason.SPOOL_UNWRITABLE, f"{local} is not writable"
    free_mb = shutil.disk_usage(local).free // (1024 * 1024)
    if free_mb < spool.min_free_mb:
        return StatusReason.SPOOL_FULL, (f"{free_mb} MB free in {local}, below "
                                         f"{spool.min_free_mb} MB")
    return None


@dataclass(frozen=True)
class RecordingFile:
    """A MixMonitor's file, from its start until it is proven closed and described."""

    call_id: str
    asterisk_path: str
    local_path: Path
    mixmonitor_id: str
    started_at: datetime
    stereo: bool = False  # MixMonitor D: a headerless <id>.raw (ari_app/rawfile.py)
    stereo_refused: str | None = None  # stereo asked for, refused on this PBX: why

    @property
    def wav_path(self) -> Path:
        """The WAV the manifest names: the file itself, or the one wrapped from the raw."""
        return self.local_path.with_suffix(".wav")


@dataclass(frozen=True)
class VerifiedRecording:
    """The proof that a call's recording ran when it was made (``Recorder`` only). Whether it
    still runs is asked again before every prompt that says so (``Recorder.still_running``)."""

    file: RecordingFile
    verified_at: datetime
    _seal: object = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._seal is not _SEAL:
            raise TypeError("a VerifiedRecording is made only by Recorder's proof rule")

    def record(self) -> Recording:
        """The manifest's view of this recording, before its file is described."""
        f = self.file
        return Recording(path=str(f.wav_path), mixmonitor_id=f.mixmonitor_id,
                         started_at=f.started_at, verified_at=self.verified_at,
                         channels=list(STEREO if f.stereo else MONO),
                         stereo_refused=f.stereo_refused)


@dataclass
class _Evidence:
    """What Asterisk said so far about a MixMonitor (read again only while missing)."""

    mixmonitor_id: str = ""
    filename: str = ""


class Recorder:
    def __init__(self, ami: AmiClient, spool: SpoolSettings, verify_timeout_s: float,
                 watch: CloseWatch, on_stopped: Callable[[], None] = lambda: None,
                 recording: RecordingSettings | None = None) -> None:
        self.ami = ami
        self.watch = watch
        self.spool = spool
        self.verify_timeout_s = verify_timeout_s
        self.on_stopped = on_stopped  # an unverified MixMonitor was stopped (a metric)
        self.recording = recording or RecordingSettings()
        self.asterisk_version: str | None = None  # learnt at each ARI connect (resync)

    def learn_version(self, version: str | None) -> None:
        if version != self.asterisk_version:
            log.info("Asterisk %s: stereo recording %s", version or "(version unknown)",
                     stereo_refusal(version, self.recording.stereo_on_8k_only_pbx)
                     or "possible")
        self.asterisk_version = version

    def paths(self, call_id: str, stereo: bool = False) -> tuple[str, Path]:
        """(file as Asterisk sees it, as we see it). Names come from the call id only, never
        from caller input. Stereo must end in .raw (app_mixmonitor.c, option D)."""
        name = f"{call_id}.raw" if stereo else f"{call_id}.wav"
        return f"{self.spool.asterisk_dir}/{name}", self.spool.local / name

    def file_of(self, call_id: str, mixmonitor_id: str, started_at: datetime,
                stereo: bool = False, stereo_refused: str | None = None) -> RecordingFile:
        asterisk_path, local_path = self.paths(call_id, stereo)
        return RecordingFile(call_id, asterisk_path, local_path, mixmonitor_id, started_at,
                             stereo, stereo_refused)

    async def start(self, call_id: str, channel: str, stereo: bool = False,
                    ) -> VerifiedRecording:
        problem = spool_problem(self.spool)
        if problem:
            raise RecordingFailed(*problem)
        refused = stereo_refusal(self.asterisk_version, self.recording.stereo_on_8k_only_pbx) \
            if stereo else None
        if refused:
            log.warning("[%s] recorded mono: %s", call_id, refused)
        file = self.file_of(call_id, "", now(), stereo and not refused, refused)
        local_path, evidence = file.local_path, _Evidence()
        self.watch.closed(local_path.name)  # watch before the file exists: no close is missed
        options = f"i({ID_VAR})D" if file.stereo else f"i({ID_VAR})"
        try:
            evidence.mixmonitor_id = await self.ami.mixmonitor(channel, file.asterisk_path,
                                                               options)
            proof = await self._verify(channel, evidence, file)
        except AmiError as exc:
            self.watch.forget(local_path.name)
            if not isinstance(exc, AmiRefused | AmiNotConnected):
                # Sent, no answer (a timeout, AMI lost meanwhile): Asterisk may have started it.
                await self.stop_unverified(channel, mixmonitor_id="")
            raise RecordingFailed(StatusReason.MIXMONITOR_REFUSED, str(exc)) from exc
        except RecordingFailed:
            self.watch.forget(local_path.name)
            raise
        log.debug("[%s] recording verified: MixMonitor %s -> %s", call_id,
                  proof.file.mixmonitor_id, local_path)
        return proof

    async def _verify(self, channel: str, evidence: _Evidence, file: RecordingFile,
                      ) -> VerifiedRecording:
        deadline = time.monotonic() + self.verify_timeout_s
        # A local header read; the caller waits on it. Quick at first (the header is there
        # within ~10 ms on an idle PBX), slower while a loaded PBX takes its time.
        pauses = Backoff(first=0.005, factor=1.5, cap=0.025, jitter=0.0)
        while True:
            try:
                await self._gather(channel, evidence, file.asterisk_path)
                problem = self._unproven(evidence, file)
            except AmiError as exc:
                problem = str(exc)
            if problem is None:
                return self._seal(evidence, file)
            if time.monotonic() >= deadline:
                await self.stop_unverified(channel, evidence.mixmonitor_id)
                raise RecordingFailed(StatusReason.MIXMONITOR_UNVERIFIED,
                                      f"not proven within {self.verify_timeout_s:.1f} s: "
                                      f"{problem}")
            await asyncio.sleep(pauses.next())

    async def _gather(self, channel: str, evidence: _Evidence, expected: str | None,
                      ) -> None:
        if not evidence.mixmonitor_id:
            evidence.mixmonitor_id = await self.ami.getvar(channel, ID_VAR)
        if evidence.mixmonitor_id and evidence.filename != expected:
            evidence.filename = await self.ami.getvar(
                channel, f"MIXMONITOR({evidence.mixmonitor_id},filename)")

    @staticmethod
    def _unproven(evidence: _Evidence, file: RecordingFile) -> str | None:
        """The rule: why this MixMonitor is not proven to record ``file`` now, or None."""
        if not evidence.mixmonitor_id:
            return "no MixMonitor ID"
        if evidence.filename != file.asterisk_path:
            return f"MIXMONITOR({evidence.mixmonitor_id},filename) is {evidence.filename!r}"
        if file.stereo and not file.local_path.exists():
            # A raw file has no header: it is created when the recording thread starts
            # (mixmonitor_save_prep before its loop), and the writer check below holds.
            return f"{file.local_path} not created yet"
        if not file.stereo and not has_wav_header(file.local_path):
            return f"{file.local_path} has no WAV header yet"
        if writer_open(file.local_path) is False:
            return f"{file.local_path} is closed: nothing writes it"
        return None

    def _seal(self, evidence: _Evidence, file: RecordingFile) -> VerifiedRecording:
        self.watch.closed(file.local_path.name)
        if file.mixmonitor_id != evidence.mixmonitor_id:
            file = replace(file, mixmonitor_id=evidence.mixmonitor_id)
        return VerifiedRecording(file, now(), _SEAL)

    async def resume(self, channel: str) -> VerifiedRecording | None:
        """The recording an earlier run of callrec started on ``channel`` and died before
        handing over (kill -9 during the notice), proven by the same rule as a fresh one, with
        its file in our spool under one of our call-id names. Otherwise that MixMonitor (if any)
        is stopped and None returned: an unverified recording must not run on."""
        evidence = _Evidence()
        try:
            evidence.mixmonitor_id = await self.ami.getvar(channel, ID_VAR)
            if not evidence.mixmonitor_id:
                return None
            await self._gather(channel, evidence, None)  # any name: read it
        except AmiError as exc:
            log.warning("earlier recording on %s not checked: %s", channel, exc)
            return None
        name = evidence.filename.rsplit("/", 1)[-1]
        stereo = name.endswith(".raw")
        call_id = name.removesuffix(".raw" if stereo else ".wav")
        # Started before this run saw it: its start is when this run took it on.
        file = self.file_of(call_id, evidence.mixmonitor_id, now(), stereo)
        problem = "not one of our call ids" if not is_call_id(call_id) else \
            self._unproven(evidence, file)
        if problem is not None:
            log.warning("earlier recording on %s (%s) not verifiable: %s", channel,
                        evidence.filename or "no file", problem)
            await self.stop_unverified(channel, evidence.mixmonitor_id)
            return None
        return self._seal(evidence, file)

    async def reprove(self, channel: str, file: RecordingFile) -> VerifiedRecording | None:
        """A recording adopted from the journal, on a channel still up, proven again by the
        same rule; None if it cannot be (it is then finished as it is, and nobody else is told
        that the call is recorded)."""
        evidence = _Evidence(mixmonitor_id=file.mixmonitor_id)
        try:
            await self._gather(channel, evidence, file.asterisk_path)
        except AmiError as exc:
            log.warning("[%s] recording not proven again: %s", file.call_id, exc)
            return None
        problem = self._unproven(evidence, file)
        if problem is not None:
            log.warning("[%s] recording not proven again: %s", file.call_id, problem)
            return None
        return self._seal(evidence, file)

    async def stop_unverified(self, channel: str, mixmonitor_id: str,
                              patience_s: float = 3.0) -> bool:
        """Never keep recording a call whose caller will not be told: the one way callrec stops
        a MixMonitor it could not prove (dialplan/callrec.conf has the dialplan's one way,
        ``callrec-stop-unverified``). Without its ID (the MixMonitor reply never came) the ID is
        read from the channel: ``i()`` sets it as MixMonitor starts, so none there means none
        started. Never a StopMixMonitor without an ID: that stops whichever MixMonitor comes
        first, perhaps the PBX's own. AMI may be what failed: tried again while it reconnects,
        up to ``patience_s``. False if not stopped."""
        deadline, pauses = time.monotonic() + patience_s, Backoff(first=0.1, cap=1.0, jitter=0.0)
        while True:
            try:
                if not mixmonitor_id:
                    mixmonitor_id = await self.ami.getvar(channel, ID_VAR)
                if mixmonitor_id:
                    await self.ami.action({"Action": "StopMixMonitor", "Channel": channel,
                                           "MixMonitorID": mixmonitor_id})
                    log.warning("MixMonitor %s on %s stopped: not verified, no notice",
                                mixmonitor_id, channel)
                    self.on_stopped()
                return True
            except AmiRefused:
                return True  # no such channel or MixMonitor: nothing records
            except AmiError as exc:
                pause = pauses.next()
                if time.monotonic() + pause > deadline:
                    log.error("ALERT MixMonitor %s on %s not stopped (%s): it may record a call "
                              "whose caller was not told", mixmonitor_id or "(ID unknown)",
                              channel, exc)
                    return False
                await asyncio.sleep(pause)

    async def abandon(self, proof: VerifiedRecording, channel: str) -> None:
        """A proven recording that stopped before the notice: nothing was said of it, and it
        is not kept (like an unverified one)."""
        self.watch.forget(proof.file.local_path.name)
        await self.stop_unverified(channel, proof.file.mixmonitor_id)

    def still_running(self, proof: VerifiedRecording) -> bool:
        """Whether a proven recording still records: asked right before every prompt that says
        so (ari_app/announce.py)."""
        return not self.is_closed(proof.file)

    def is_closed(self, file: RecordingFile) -> bool:
        """Whether the recording's writer has closed it: the lease probe when this process may
        take one, else the inotify close event. A close seen while a writer still has the file
        open (an inherited descriptor) is cleared, not trusted."""
        closed = self.watch.closed(file.local_path.name)
        state = writer_open(file.local_path)
        if state is True:
            self.watch.distrust(file.local_path.name)
            return False
        return state is False or closed.is_set()

    async def wait_closed(self, file: RecordingFile, record: Recording, timeout_s: float,
                          ) -> Header:
        """Wait until the file is proven closed, then describe it into ``record`` (size,
        duration, SHA-256, close time); returns the state its writer left the header in."""
        closed = self.watch.closed(file.local_path.name)
        deadline = time.monotonic() + timeout_s
        try:
            while not self.is_closed(file):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RecordingFailed(StatusReason.RECORDING_NOT_CLOSED,
                                          f"{file.local_path.name} still open after "
                                          f"{timeout_s:.0f} s")
                try:  # re-probe now and then: a close may have happened while we were down
                    await asyncio.wait_for(closed.wait(), min(remaining, 1.0))
                except TimeoutError:
                    pass
            # The close as the kernel reported it: callrec may only look later (a call that
            # ended while ARI was away). Not seen (callrec was down): the last write, which is
            # the close itself when Asterisk finished the header (update_header).
            record.closed_at = self.watch.closed_at(file.local_path.name) \
                or modified_at(file.local_path)
        finally:
            self.watch.forget(file.local_path.name)
        header = await asyncio.to_thread(self._describe, file, record, True)
        if header is not Header.FINISHED:
            log.warning("[%s] %s: its writer died before finishing the WAV header (Asterisk "
                        "killed?): %s", file.call_id, file.local_path.name,
                        "sizes set from the file" if record.header_repaired else "left as is")
        return header

    async def describe_partial(self, file: RecordingFile, record: Recording) -> None:
        """What is on disk of a recording that was not proven closed (kept, never deleted)."""
        if file.local_path.exists():
            try:
                await asyncio.to_thread(self._describe, file, record, False)
            except RecordingFailed as exc:
                log.error("[%s] %s", file.call_id, exc)

    @staticmethod
    def _describe(file: RecordingFile, record: Recording, closed: bool) -> Header:
        """Size, duration and SHA-256 of the recording's WAV into ``record``. A WAV's header
        is repaired if its writer died (only once proven closed). A raw stream has no header
        to say so: it gets its WAV here (ari_app/rawfile.py), made again from the raw each time,
        and a writer that died shows only as a torn last frame; ``Ending`` tells a PBX crash
        from the PBX's restart, not from the file."""
        if file.stereo:
            try:
                raw = wrap(file.local_path, file.wav_path)
            except OSError as exc:  # the raw stays in the spool: nothing of the call is lost
                reason = StatusReason.SPOOL_FULL if exc.errno == errno.ENOSPC \
                    else StatusReason.CALLREC_ERROR
                raise RecordingFailed(reason, f"{file.wav_path.name} not written from "
                                              f"{file.local_path.name}: {exc}") from exc
            record.source_size, record.source_sha256 = raw.size, raw.sha256
            if raw.torn:
                log.warning("[%s] %s: last frame cut short (%d bytes), not in the WAV",
                            file.call_id, file.local_path.name, raw.torn)
        size, duration, digest, header = describe(file.wav_path, repair=closed)
        record.size, record.duration_s, record.sha256 = size, duration, digest
        record.header_repaired = header is Header.REPAIRED
        return header
