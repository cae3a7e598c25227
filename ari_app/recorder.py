"""Start MixMonitor over AMI, prove it records, and prove the file complete after the call.

``Response: Success`` to the AMI MixMonitor action does not prove a recording: app_mixmonitor.c
publishes the start and sets MIXMONITOR_FILENAME even when the recording thread then fails to open
the file. So verification requires, within a deadline: the MixMonitor ID (option ``i()``), its
datastore answering ``MIXMONITOR(<id>,filename)`` with our file, and the file on disk with its WAV
header (written once the thread runs).

There is no MixMonitorStop event on a plain hang-up, and the WAV header sizes are written only on
close: the file is complete once no writer has it open any more, which the kernel proves
(ari_app/closewatch.py) - not a timer, and not a ``Command`` hook (a fork of Asterisk per call).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from ari_app import AriAppError
from ari_app.ami import AmiClient, AmiError, AmiNotConnected, AmiRefused
from ari_app.closewatch import CloseWatch, writer_open
from ari_app.config import SpoolSettings
from callrec.manifest import Recording

log = logging.getLogger(__name__)

ID_VAR = "CALLREC_MIXMON_ID"
CALL_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}$")  # call.new_call_id's names


class RecordingFailed(AriAppError):
    """The recording could not be started or verified; ``reason`` goes into the manifest."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def now() -> datetime:
    return datetime.now(UTC)


def spool_problem(spool: SpoolSettings) -> tuple[str, str] | None:
    """(reason, detail) if the spool cannot take a recording now, else None."""
    local = spool.local
    if not local.is_dir():
        return "spool_missing", f"{local} does not exist"
    if not os.access(local, os.W_OK | os.X_OK):
        return "spool_unwritable", f"{local} is not writable"
    free_mb = shutil.disk_usage(local).free // (1024 * 1024)
    if free_mb < spool.min_free_mb:
        return "spool_full", f"{free_mb} MB free in {local}, below {spool.min_free_mb} MB"
    return None


class Header(StrEnum):
    FINISHED = "finished"  # by its writer (or not a header this code knows)
    UNFINISHED = "unfinished"  # its writer died; callrec may not write the file
    REPAIRED = "repaired"  # its writer died; callrec finished it


@dataclass
class ActiveRecording:
    call_id: str
    asterisk_path: str
    local_path: Path
    mixmonitor_id: str
    started_at: datetime
    verified_at: datetime
    header: Header = Header.FINISHED  # of its file once closed (repair_header)

    def record(self) -> Recording:
        """The manifest's view of this recording, before its file is described."""
        return Recording(path=str(self.local_path), mixmonitor_id=self.mixmonitor_id,
                         started_at=self.started_at, verified_at=self.verified_at)


class Recorder:
    def __init__(self, ami: AmiClient, spool: SpoolSettings, verify_timeout_s: float,
                 watch: CloseWatch) -> None:
        self.ami = ami
        self.watch = watch
        self.spool = spool
        self.verify_timeout_s = verify_timeout_s

    def paths(self, call_id: str) -> tuple[str, Path]:
        """(file as Asterisk sees it, as we see it). Names come from the call id only, never
        from caller input."""
        return f"{self.spool.asterisk_dir}/{call_id}.wav", self.spool.local / f"{call_id}.wav"

    async def start(self, call_id: str, channel: str) -> ActiveRecording:
        problem = spool_problem(self.spool)
        if problem:
            raise RecordingFailed(*problem)
        asterisk_path, local_path = self.paths(call_id)
        self.watch.closed(local_path.name)  # watch before the file exists: no close is missed
        started_at = now()
        try:
            mixmonitor_id = await self.ami.mixmonitor(channel, asterisk_path, f"i({ID_VAR})")
            mixmonitor_id = await self._verify(channel, asterisk_path, local_path, mixmonitor_id)
        except AmiError as exc:
            self.watch.forget(local_path.name)
            if not isinstance(exc, AmiRefused | AmiNotConnected):
                # Sent, no answer (a timeout, AMI lost meanwhile): Asterisk may have started it.
                await self.stop(channel, mixmonitor_id="")
            raise RecordingFailed("mixmonitor_refused", str(exc)) from exc
        except RecordingFailed:
            self.watch.forget(local_path.name)
            raise
        log.debug("[%s] recording verified: MixMonitor %s -> %s", call_id, mixmonitor_id,
                 local_path)
        return ActiveRecording(call_id, asterisk_path, local_path, mixmonitor_id, started_at,
                               now())

    async def _verify(self, channel: str, asterisk_path: str, local_path: Path,
                      mixmonitor_id: str) -> str:
        deadline = time.monotonic() + self.verify_timeout_s
        filename, last, pause = "", "no MixMonitor ID", 0.005
        while True:
            try:
                if not mixmonitor_id:
                    mixmonitor_id = await self.ami.getvar(channel, ID_VAR)
                if mixmonitor_id and filename != asterisk_path:
                    filename = await self.ami.getvar(channel,
                                                     f"MIXMONITOR({mixmonitor_id},filename)")
                    last = f"MIXMONITOR({mixmonitor_id},filename) is {filename!r}"
                if filename == asterisk_path:
                    last = f"{local_path} has no WAV header yet"
                    if _has_wav_header(local_path):
                        return mixmonitor_id
            except AmiError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                await self.stop(channel, mixmonitor_id)
                raise RecordingFailed("mixmonitor_unverified",
                                      f"not proven within {self.verify_timeout_s:.1f} s: {last}")
            # A local header read; the caller waits on it. Quick at first (the header is there
            # within ~10 ms on an idle PBX), slower while a loaded PBX takes its time.
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.025)

    async def resume(self, channel: str) -> ActiveRecording | None:
        """The recording an earlier run of callrec started on ``channel`` and died before
        handing over (kill -9 during the notice), if it is verifiably still ours and running:
        its ID on the channel, its datastore naming a file of our spool, the file with its WAV
        header and still open for writing. Otherwise that MixMonitor (if any) is stopped and
        None returned: an unverified recording must not run on."""
        try:
            mixmonitor_id = await self.ami.getvar(channel, ID_VAR)
            if not mixmonitor_id:
                return None
            filename = await self.ami.getvar(channel, f"MIXMONITOR({mixmonitor_id},filename)")
        except AmiError as exc:
            log.warning("earlier recording on %s not checked: %s", channel, exc)
            return None
        call_id = filename.rsplit("/", 1)[-1].removesuffix(".wav")
        asterisk_path, local_path = self.paths(call_id)
        ours = bool(CALL_ID.match(call_id)) and filename == asterisk_path
        if not ours or not _has_wav_header(local_path) or writer_open(local_path) is False:
            log.warning("earlier recording on %s (%s) not verifiable: stopped", channel,
                        filename or "no file")
            await self.stop(channel, mixmonitor_id)
            return None
        self.watch.closed(local_path.name)
        at = now()
        return ActiveRecording(call_id, asterisk_path, local_path, mixmonitor_id, at, at)

    async def stop(self, channel: str, mixmonitor_id: str, patience_s: float = 3.0) -> bool:
        """Never keep recording a call whose caller will not be told. Without its ID (the
        MixMonitor reply never came) the ID is read from the channel: ``i()`` sets it as
        MixMonitor starts, so none there means none started. Never a StopMixMonitor without an
        ID: that stops whichever MixMonitor comes first, perhaps the PBX's own. AMI may be what
        failed: tried again while it reconnects, up to ``patience_s``. False if not stopped."""
        deadline, pause = time.monotonic() + patience_s, 0.1
        while True:
            try:
                if not mixmonitor_id:
                    mixmonitor_id = await self.ami.getvar(channel, ID_VAR)
                if mixmonitor_id:
                    await self.ami.action({"Action": "StopMixMonitor", "Channel": channel,
                                           "MixMonitorID": mixmonitor_id})
                    log.warning("MixMonitor %s on %s stopped: not verified, no notice",
                                mixmonitor_id, channel)
                return True
            except AmiRefused:
                return True  # no such channel or MixMonitor: nothing records
            except AmiError as exc:
                if time.monotonic() + pause > deadline:
                    log.error("ALERT MixMonitor %s on %s not stopped (%s): it may record a call "
                              "whose caller was not told", mixmonitor_id or "(ID unknown)",
                              channel, exc)
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    def is_closed(self, active: ActiveRecording) -> bool:
        """Whether the recording's writer has closed it: the lease probe when this process may
        take one, else the inotify close event. A close seen while a writer still has the file
        open (an inherited descriptor) is cleared, not trusted."""
        closed = self.watch.closed(active.local_path.name)
        state = writer_open(active.local_path)
        if state is True:
            self.watch.distrust(active.local_path.name)
            return False
        return state is False or closed.is_set()

    async def wait_closed(self, active: ActiveRecording, timeout_s: float) -> Recording:
        """Wait until the file is proven closed, then describe it (size, duration, SHA-256)."""
        record = active.record()
        closed = self.watch.closed(active.local_path.name)
        deadline = time.monotonic() + timeout_s
        try:
            while not self.is_closed(active):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RecordingFailed("recording_not_closed",
                                          f"{active.local_path.name} still open after "
                                          f"{timeout_s:.0f} s")
                try:  # re-probe now and then: a close may have happened while we were down
                    await asyncio.wait_for(closed.wait(), min(remaining, 1.0))
                except TimeoutError:
                    pass
            # The close as the kernel reported it: callrec may only look later (a call that
            # ended while ARI was away). Not seen (callrec was down): the last write, which is
            # the close itself when Asterisk finished the header (update_header).
            record.closed_at = self.watch.closed_at(active.local_path.name) \
                or _modified_at(active.local_path)
        finally:
            self.watch.forget(active.local_path.name)
        size, duration, digest, active.header = await asyncio.to_thread(
            _describe, active.local_path, repair=True)
        record.size, record.duration_s, record.sha256 = size, duration, digest
        record.header_repaired = active.header is Header.REPAIRED
        if active.header is not Header.FINISHED:
            log.warning("[%s] %s: its writer died before finishing the WAV header (Asterisk "
                        "killed?): %s", active.call_id, active.local_path.name,
                        "sizes set from the file" if record.header_repaired else "left as is")
        return record

    async def describe_partial(self, active: ActiveRecording) -> Recording:
        """What is on disk of a recording that was not proven closed (kept, never deleted)."""
        record = active.record()
        if active.local_path.exists():
            size, duration, digest, _ = await asyncio.to_thread(_describe, active.local_path)
            record.size, record.duration_s, record.sha256 = size, duration, digest
        return record


def _modified_at(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return now()


def _has_wav_header(path: Path) -> bool:
    try:  # os-level: no buffered file object (its isatty and seek calls) for 12 bytes
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.read(fd, 12)
    except OSError:
        return False
    finally:
        os.close(fd)
    return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


_RIFF_SIZE, _DATA_SIZE, _HEADER = 4, 40, 44


def _unfinished(head: bytes) -> bool:
    """Asterisk writes the header with both sizes 0 when it opens the file and fills them in
    only when it closes it (``update_header`` from ``wav_close``, formats/format_wav.c). A
    finished header's RIFF size is at least 36, even with no audio: 0 means never finished (a
    writer that died, perhaps before its first flush left anything but the header)."""
    return len(head) >= _HEADER and head[:4] == b"RIFF" and head[8:12] == b"WAVE" \
        and head[36:40] == b"data" and struct.unpack_from("<I", head, _RIFF_SIZE)[0] == 0 \
        and struct.unpack_from("<I", head, _DATA_SIZE)[0] == 0


def repair_header(path: Path, size: int) -> bool:
    """Finish the unfinished WAV header of a recording whose writer died; False if callrec may
    not write the file. If Asterisk is killed or the host loses power, the sizes stay 0 and
    players see an empty recording although the audio is on disk. Call it only on a file
    proven closed (no writer left). Only these 8 bytes change, set as ``update_header`` would
    have set them, and the manifest says so (``header_repaired``): zeroing them again gives
    back the bytes Asterisk left."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:  # not ours to write (Asterisk's umask: README, Spool)
        log.warning("%s: unfinished WAV header not repaired: %s", path.name, exc)
        return False
    try:
        os.pwrite(fd, struct.pack("<I", min(size - 8, 0xFFFFFFFF)), _RIFF_SIZE)
        os.pwrite(fd, struct.pack("<I", min(size - _HEADER, 0xFFFFFFFF)), _DATA_SIZE)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _describe(path: Path, repair: bool = False) -> tuple[int, float, str, Header]:
    """(size, duration, SHA-256, header state) of a recording, in one read of the file;
    ``repair`` (an unfinished header) only when the file is proven closed. The file is opened
    read-only: opening it for writing is itself a close event, so only a repair does."""
    digest, state = hashlib.sha256(), Header.FINISHED
    with path.open("rb") as f:
        header, size = f.read(_HEADER), os.fstat(f.fileno()).st_size
        if repair and _unfinished(header):
            state = Header.REPAIRED if repair_header(path, size) else Header.UNFINISHED
            if state is Header.REPAIRED:
                # Hash the bytes now on disk, read past the reader's buffer (a seek reuses it).
                header = os.pread(f.fileno(), _HEADER, 0)
        digest.update(header)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    rate = struct.unpack_from("<I", header, 24)[0] if len(header) >= _HEADER else 8000
    block = struct.unpack_from("<H", header, 32)[0] if len(header) >= _HEADER else 2
    return (size, round((size - _HEADER) / ((rate or 8000) * (block or 2)), 3),
            digest.hexdigest(), state)
