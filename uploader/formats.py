"""A recording's archive format, as the uploader ships it (``[upload] format``).

Object Lock cannot undo a put, so the transcode is made and verified (uploader/transcode.py)
before anything of the call is archived, and its order in the bucket is:

1. the transcode (``<key>.flac``/``.opus``), and the WAV too if ``keep_original``;
2. the manifest the call flow sealed, as it is: its chain entry names these bytes, and it still
   says what was recorded (the WAV's size and SHA-256);
3. a new manifest version naming the archived object (``recording.archived``: format, size,
   SHA-256, decoded duration), sealed in this host's archive chain (callrec/evidence/ledger.py;
   the uploader's ticks checkpoint it) or unsealed when evidence is off. Its metadata
   ``supersedes`` is the SHA-256 of version 2's predecessor, so a restart after it knows the
   call is done rather than putting the call flow's version again over it.

A transcode that fails or does not check archives the WAV instead (nothing is lost, the metric
says so). The spool's transcode is renamed into place only once verified, so a restart after a
kill -9 finds either none (and encodes again) or a whole one (decoded once more, then reused).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from callrec.evidence.ledger import Ledger
from callrec.manifest import ArchivedAudio, AudioFormat, CallManifest
from callrec.s3.settings import Lock
from callrec.s3.store import Store
from callrec.signing import sha256_hex
from uploader import UploaderError
from uploader.config import UploadSettings
from uploader.metrics import Metrics
from uploader.transcode import Encoded, TranscodeError, made

log = logging.getLogger(__name__)


def spool_file(wav: Path, fmt: AudioFormat) -> Path:
    """Where the spool holds the call's transcode."""
    return wav.with_suffix(f".{fmt.value}")


def leftovers(wav: Path) -> list[Path]:
    """Every transcode file of the call the spool holds (finished, or a killed one's)."""
    found = []
    for fmt in (AudioFormat.FLAC, AudioFormat.OPUS):
        out = spool_file(wav, fmt)
        found += [out, *out.parent.glob(f".{out.name}.*.tmp")]
    return found


@dataclass(frozen=True)
class Transcoded:
    fmt: AudioFormat
    encoded: Encoded
    kbps: int | None

    def archived(self, keep_original: bool) -> ArchivedAudio:
        e = self.encoded
        return ArchivedAudio(format=self.fmt, size=e.size, sha256=e.sha256,
                             duration_s=e.duration_s, bitrate_kbps=self.kbps,
                             original_kept=keep_original)


class TranscoderDown(UploaderError):
    """The transcoding workers died (killed, out of memory): the call waits in the spool and
    is retried with new ones."""


class Formats:
    """Transcodes in worker processes: PyAV's encoders hold the GIL (measured: four threads
    made eight 3-minute Opus files in 4.97 s, one thread in 5.68 s, two processes in 2.96 s)."""

    def __init__(self, settings: UploadSettings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.settings.format is not AudioFormat.WAV

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _workers(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.settings.transcode_workers or os.cpu_count() or 1,
                    mp_context=multiprocessing.get_context("spawn"), initializer=_worker,
                    initargs=(os.getpid(),))
            return self._pool

    def prepare(self, call_id: str, wav: Path) -> Transcoded | None:
        """The call's transcode in the spool, made now or reused and checked; None: archive
        the WAV (format wav, or the transcode failed: logged and counted)."""
        fmt = self.settings.format
        if fmt is AudioFormat.WAV:
            return None
        out, kbps = spool_file(wav, fmt), self.settings.opus_kbps
        started = time.monotonic()
        pool = self._workers()
        try:
            encoded = pool.submit(made, wav, out, fmt, kbps,
                                  self.settings.opus_complexity).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:  # the first thread to see it replaces it
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise TranscoderDown(f"transcoding workers died: {exc}") from exc
        except TranscodeError as exc:
            self.metrics.transcode_failures.labels(fmt.value).inc()
            log.error("[%s] not archived as %s (%s): archiving the WAV instead", call_id,
                      fmt.value, exc)
            return None
        self.metrics.transcode.labels(fmt.value).observe(time.monotonic() - started)
        return Transcoded(fmt, encoded, kbps if fmt is AudioFormat.OPUS else None)


def _worker(uploader: int) -> None:
    """A transcoding worker ignores the signals that stop the uploader (systemd signals the
    whole unit: the uploader drains, then shuts its workers down) and dies within a second of
    it, so a kill -9 leaves no worker writing into the spool. (prctl's PR_SET_PDEATHSIG would
    fire when the *thread* that spawned the worker ends, not the uploader: a watch instead.)"""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == uploader:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="callrec-transcode-watch", daemon=True).start()


def naming(m: CallManifest, t: Transcoded, keep_original: bool) -> CallManifest:
    """The manifest's next version: the same call, its recording naming the archived object."""
    assert m.recording is not None
    recording = m.recording.model_copy(update={"archived": t.archived(keep_original)})
    return m.model_copy(update={"recording": recording, "chain": None})


def put_version(store: Store, ledger: Ledger | None, m: CallManifest, key: str, tags: str,
                metadata: dict[str, str], lock: Lock) -> bytes:
    """``m`` as the manifest object's new version, sealed when ``ledger`` is given; returns
    the bytes written."""
    if ledger is not None:
        return ledger.seal_and_put(m, key, tags, metadata, lock, ticking=True).data
    raw = m.to_json()
    digest = sha256_hex(raw)
    store.put_bytes(key, raw, digest, tags, {**metadata, "sha256": digest}, lock,
                    "application/json")
    return raw
