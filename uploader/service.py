"""Ship finished calls from the spool to S3: recording, then manifest; verify; only then clean up.

A call is ready when its manifest ``<call_id>.json`` exists in the spool: the call flow writes it
atomically once the recording is proven closed (ari_app). Shipping is idempotent: an object that
already exists with our size and SHA-256 is not uploaded again, so a restart at any point ends
with exactly one verified object per file. Local files are removed (or moved to ``done/``) only
after both objects are verified. Unreadable manifests and recordings whose SHA-256 does not match
their manifest are quarantined with a reason file, never deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from callrec import CallrecError
from callrec.evidence.ledger import archive_ledger
from callrec.manifest import CONTENT_TYPES, AudioFormat, CallManifest, RecordingStatus
from callrec.s3.layout import Layout
from callrec.s3.multipart import ContentMismatch
from callrec.s3.settings import Lock
from callrec.s3.store import Store, StoreError
from callrec.signing import SIG_SUFFIX, decode_sig, sha256_file
from callrec.webhooks.events import call_archived
from callrec.webhooks.hub import Webhooks
from uploader import UploaderError
from uploader.config import UploaderSettings
from uploader.formats import (
    Formats,
    Transcoded,
    TranscoderDown,
    naming,
    put_version,
)
from uploader.journal import State, UploadJournal, UploadJournalError
from uploader.metrics import Metrics
from uploader.spool import Spool

log = logging.getLogger(__name__)
T = TypeVar("T")
# Told of each call once it is archived (manifest, its key, its ETag, legal hold): the archive
# catalog on this host, if the CLI wires one (callrec_cli/main.py). Failures are logged only.
ArchivedFeed = Callable[[CallManifest, str, str, bool], None]


class Quarantined(UploaderError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Summary:
    shipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)


def failure_reason(exc: Exception) -> str:
    """A metric label from a bounded set: the S3 error code, or where it failed."""
    if isinstance(exc, StoreError):
        return exc.code or "s3_unreachable"
    return "transcoder" if isinstance(exc, TranscoderDown) else "spool_io"


class Uploader:
    def __init__(self, settings: UploaderSettings, store: Store | None = None,
                 metrics: Metrics | None = None, feed: ArchivedFeed | None = None) -> None:
        self.settings = settings
        self.spool = settings.upload.spool
        self.store = store or Store(settings.s3, settings.upload.multipart_threshold_mb)
        self.layout = Layout(settings.s3.key_template)
        self.metrics = metrics or Metrics()
        self.journal = UploadJournal(settings.upload.journal or self.spool / ".uploader.sqlite3",
                               settings.upload.keep_done_days)
        # One thread per concurrent call (asyncio's default pool has only cores + 4).
        self.pool = ThreadPoolExecutor(settings.upload.concurrency, "callrec-upload")
        self.feed = feed
        self.files = Spool(self.spool, settings.upload.after_upload)
        self.formats = Formats(settings.upload, self.metrics)
        # Seals the versions naming a transcode (uploader/formats.py); None: evidence is off.
        self.versions = archive_ledger(self.store, settings.evidence)
        # call.archived per call (callrec/webhooks); the daemon runs the host's sender.
        self.webhooks = Webhooks(settings.webhooks, self.metrics.registry)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.formats.close()
        self.journal.close()

    def pending(self) -> list[Path]:
        return self.files.pending()

    async def drain(self, progress: Callable[[int, int], None] = lambda done, total: None,
                    ) -> Summary:
        """Ship everything pending once; ``progress(done, total)`` after each call."""
        summary = Summary()
        limit = asyncio.Semaphore(self.settings.upload.concurrency)
        paths = self.pending()

        async def one(path: Path) -> None:
            async with limit:
                await self.ship_one(path, summary)
            progress(len(summary.shipped) + len(summary.failed) + len(summary.quarantined),
                     len(paths))

        await asyncio.gather(*(one(p) for p in paths))
        return summary

    async def ship_one(self, path: Path, summary: Summary) -> None:
        """Ship one call in a worker thread; record how it went (never raises for S3, journal or
        manifest problems: those are failures to retry or quarantines)."""
        try:
            loop = asyncio.get_running_loop()
            summary.shipped.append(await loop.run_in_executor(self.pool, self.ship, path))
        except Quarantined as exc:
            summary.quarantined[path.stem] = exc.reason
            self.metrics.quarantined.labels(exc.reason).inc()
        except (StoreError, OSError, TranscoderDown) as exc:
            summary.failed[path.stem] = str(exc)
            self.metrics.failures.labels(failure_reason(exc)).inc()
            log.warning("[%s] not archived yet: %s", path.stem, exc)
            self.journal_safely(self.journal.mark, path.stem, State.FAILED, str(exc)[:500])

    def journal_safely(self, write: Callable[..., T], *args: Any) -> T | None:
        """A journal write that must not stop shipping (see UploadJournalError)."""
        try:
            return write(*args)
        except UploadJournalError as exc:
            self._journal_failed(exc)
            return None

    def _journal_failed(self, exc: UploadJournalError) -> None:
        self.metrics.journal_errors.inc()
        log.error("%s; shipping goes on (S3 verification decides what may leave the spool)", exc)

    def backlog(self) -> None:
        """Refresh the backlog gauges from the spool."""
        found = self.files.backlog()
        self.metrics.backlog.set(found.calls)
        self.metrics.backlog_bytes.set(found.bytes)
        self.metrics.oldest.set(found.oldest_s)

    # -- one call (runs in a worker thread) -----------------------------------------------------
    def ship(self, manifest_path: Path) -> str:
        try:
            raw = manifest_path.read_bytes()
            m = CallManifest.model_validate_json(raw)
        except (OSError, ValidationError, ValueError) as exc:
            self.quarantine(manifest_path, f"unreadable manifest: {exc}")
            raise Quarantined("unreadable_manifest") from exc
        base = self.layout.base(m)
        wav = self.spool / f"{m.call_id}.wav"
        recorded = m.recording is not None and m.status is not RecordingStatus.UNRECORDED
        known_new = self._attempt(m, base, len(raw) + (
            wav.stat().st_size if recorded and wav.exists() else 0))
        tags = self.layout.tagging(m)
        lock = self.settings.retention.lock_for(m)
        fresh = known_new  # uploaded just now or never attempted: the manifest cannot be there
        coded = None
        if recorded:
            coded = self._transcode(m, wav)
            fresh = self._ship_audio(m, wav, base, coded, tags, lock, known_new) or fresh
        final, body = self._ship_manifest(m, manifest_path, raw, base, coded, tags, lock, fresh)
        if manifest_path.read_bytes() != raw:
            # Changed while we shipped it (``callrec outcome set``): the next scan ships the new
            # version; removing it now would lose the change.
            log.info("[%s] manifest changed during upload; shipping again", m.call_id)
            self.journal_safely(self.journal.mark, m.call_id, State.PENDING)
            return m.call_id
        # Before the spool lets go of the call: a full outbox disk fails this attempt, and the
        # retry finds the objects verified in S3 and emits the same event (one id) again.
        self.webhooks.emit(call_archived(final, self.settings.s3.bucket, base + ".json",
                                         self.layout.recording_keys(final), raw))
        self.journal_safely(self.journal.mark, m.call_id, State.DONE)
        ended = m.ended_at or m.entered_at
        self.metrics.latency.observe(max(0.0, (datetime.now(UTC) - ended).total_seconds()))
        self.metrics.archived.inc()
        self._catalogue(final, base + ".json", body, lock)
        self.files.clean_up(manifest_path)
        log.info("[%s] archived: s3://%s/%s.{%s,json} (%s, outcome %s)", m.call_id,
                 self.settings.s3.bucket, base, coded.fmt.value if coded else "wav",
                 m.status.value, m.outcome)
        return m.call_id

    def _transcode(self, m: CallManifest, wav: Path) -> Transcoded | None:
        """The archive format's file, from a WAV proven to be the manifest's (a corrupt one
        is quarantined, never transcoded)."""
        if not self.formats.active or m.recording is None:
            return None
        self._recording_file(m, wav)
        if m.recording.sha256 and (digest := sha256_file(wav)) != m.recording.sha256:
            self._mismatch(m, wav, digest)
        return self.formats.prepare(m.call_id, wav)

    def _ship_audio(self, m: CallManifest, wav: Path, base: str, coded: Transcoded | None,
                    tags: str, lock: Lock, known_new: bool) -> bool:
        """The recording's objects (the transcode first, then a kept original); True if any
        was uploaded now."""
        assert m.recording is not None
        fresh = False
        if coded is not None:
            e = coded.encoded
            meta = {**self.layout.metadata(m, e.sha256), "format": coded.fmt.value,
                    "source-sha256": m.recording.sha256 or ""}
            fresh = self._put_audio(e.path, f"{base}.{coded.fmt.value}", e.sha256, meta, tags,
                                    lock, known_new, CONTENT_TYPES[coded.fmt])
        if coded is None or self.settings.upload.keep_original:
            fresh = self._ship_recording(m, wav, base + ".wav", tags, lock, known_new) or fresh
        return fresh

    def _ship_manifest(self, m: CallManifest, path: Path, raw: bytes, base: str,
                       coded: Transcoded | None, tags: str, lock: Lock,
                       fresh: bool) -> tuple[CallManifest, bytes]:
        """The call flow's manifest, then (for a transcode) the version naming it; returns the
        call's newest manifest and its bytes."""
        key, digest = base + ".json", hashlib.sha256(raw).hexdigest()
        head = None if fresh else self.store.head(key)
        meta = {k.lower(): v for k, v in (head or {}).get("Metadata", {}).items()}
        if coded is not None and meta.get("supersedes") == digest:
            # Both versions were archived before a restart. Our bytes of the newest are not at
            # hand; the catalog's next sync reads them.
            return naming(m, coded, self.settings.upload.keep_original), b""
        there = head is not None and head.get("ContentLength") == len(raw) and \
            meta.get("sha256") == digest
        if not there:
            vouched = self.store.put_bytes(key, raw, digest, tags,
                                           self._manifest_metadata(m, path, digest),
                                           lock, "application/json")
            if not vouched and not self.store.verified(key, len(raw), digest):
                raise StoreError(f"S3 put {key}: not verified after upload", "not_verified")
            self.metrics.uploaded.inc(len(raw))
        if coded is None:
            return m, raw
        final = naming(m, coded, self.settings.upload.keep_original)
        body = put_version(self.store, self.versions, final, key, tags,
                           {**self.layout.metadata(final, ""), "supersedes": digest}, lock)
        self.metrics.uploaded.inc(len(body))
        return final, body

    def _manifest_metadata(self, m: CallManifest, path: Path, digest: str) -> dict[str, str]:
        """The manifest's metadata, with its signature when it is sealed (callrec/evidence/:
        the call flow wrote it beside the manifest)."""
        meta = self.layout.metadata(m, digest)
        if m.chain is not None:
            sig = path.with_name(path.name + SIG_SUFFIX)
            try:
                text = sig.read_text().strip()
            except FileNotFoundError:
                text = ""
            if decode_sig(text) is None:
                self.quarantine(path, f"sealed manifest without a valid signature ({sig})")
                raise Quarantined("signature_missing")
            meta["signature"] = text
        return meta

    def _attempt(self, m: CallManifest, base: str, size: int) -> bool:
        """Journal the attempt; True if the call was never attempted before (then no object of
        it can exist yet, so the HEADs that make a retry idempotent are skipped)."""
        try:
            before = self.journal.start(m.call_id, size, base)
            # Only a journal that has seen every attempt may say "never attempted".
            known_new = before is None and self.journal.inherited
        except UploadJournalError as exc:
            self._journal_failed(exc)
            before, known_new = None, False
        if before is State.UPLOADING:
            log.warning("[%s] an earlier run stopped mid-upload; shipping again", m.call_id)
        return known_new

    def _recording_file(self, m: CallManifest, wav: Path) -> None:
        if not wav.exists():
            self.quarantine(self.spool / f"{m.call_id}.json", "recording file missing")
            raise Quarantined("recording_missing")

    def _ship_recording(self, m: CallManifest, wav: Path, key: str, tags: str,
                        lock: Lock, known_new: bool) -> bool:
        """Ship and verify the WAV; True if it was uploaded now (False: already there)."""
        assert m.recording is not None
        self._recording_file(m, wav)
        size = wav.stat().st_size
        # A large file is hashed while it uploads (callrec/s3/multipart.py); a small one first.
        streamed = self.store.is_large(size) and bool(m.recording.sha256)
        digest = m.recording.sha256 if streamed and m.recording.sha256 else sha256_file(wav)
        if m.recording.sha256 and digest != m.recording.sha256:
            self._mismatch(m, wav, digest)
        try:
            return self._put_audio(wav, key, digest, self.layout.metadata(m, digest), tags,
                                   lock, known_new, CONTENT_TYPES[AudioFormat.WAV])
        except ContentMismatch as exc:  # aborted: nothing was archived
            self._mismatch(m, wav, exc.actual)

    def _put_audio(self, path: Path, key: str, digest: str, meta: dict[str, str], tags: str,
                   lock: Lock, known_new: bool, content_type: str) -> bool:
        """One recording object, verified; True if uploaded now (False: already there)."""
        size = path.stat().st_size
        if not known_new and self.store.verified(key, size, digest):
            return False  # shipped before a restart
        vouched = self.store.put_file(key, path, digest, tags, meta, lock, content_type)
        if not vouched and not self.store.verified(key, size, digest):
            raise StoreError(f"S3 put {key}: not verified after upload", "not_verified")
        self.metrics.uploaded.inc(size)
        return True

    def _catalogue(self, m: CallManifest, key: str, raw: bytes, lock: Lock) -> None:
        """Tell the feed (the local catalog); on failure `archive sync` adds the call."""
        if self.feed is None:
            return
        # A single PUT's ETag is the body's MD5 (no SSE-KMS): the next sync then sees the
        # object as known; if not, it reads the manifest once more.
        etag = hashlib.md5(raw, usedforsecurity=False).hexdigest() if raw else ""
        try:
            self.feed(m, key, etag, lock.legal_hold)
        except CallrecError as exc:
            log.warning("[%s] not in the catalog yet (the next sync adds it): %s", m.call_id, exc)

    def _mismatch(self, m: CallManifest, wav: Path, actual: str) -> NoReturn:
        assert m.recording is not None
        self.quarantine(wav.with_suffix(".json"),
                        f"SHA-256 {actual} differs from the manifest's {m.recording.sha256}")
        raise Quarantined("checksum_mismatch")

    def quarantine(self, manifest: Path, reason: str) -> None:
        self.files.quarantine(manifest, reason)
        log.error("[%s] quarantined: %s", manifest.stem, reason)
        self.journal_safely(self.journal.mark, manifest.stem, State.QUARANTINED, reason[:500])
