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
import json
import logging
import random
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError

from callrec.manifest import CallManifest, RecordingStatus
from uploader import UploaderError
from uploader.config import UploaderSettings
from uploader.store import Lock, Store, StoreError
from uploader.tags import tagging_header, tags_for

log = logging.getLogger(__name__)


class Quarantined(UploaderError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Summary:
    shipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Uploader:
    def __init__(self, settings: UploaderSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.spool = settings.upload.spool
        self.store = store or Store(settings.s3, settings.upload.multipart_threshold_mb)

    def pending(self) -> list[Path]:
        """Final manifests waiting in the spool (hidden temp files and sub-directories such as
        .inflight/, done/ and quarantine/ are not)."""
        return sorted(p for p in self.spool.glob("*.json") if not p.name.startswith("."))

    async def drain(self) -> Summary:
        summary = Summary()
        limit = asyncio.Semaphore(self.settings.upload.concurrency)

        async def one(path: Path) -> None:
            async with limit:
                try:
                    call_id = await asyncio.to_thread(self.ship, path)
                    summary.shipped.append(call_id)
                except Quarantined as exc:
                    summary.quarantined[path.stem] = exc.reason
                except StoreError as exc:
                    summary.failed[path.stem] = str(exc)
                    log.warning("[%s] not archived yet: %s", path.stem, exc)

        await asyncio.gather(*(one(p) for p in self.pending()))
        return summary

    async def run(self, stopping: asyncio.Event) -> None:
        delay = self.settings.upload.scan_interval_s
        while not stopping.is_set():
            summary = await self.drain()
            # S3 down or slow: back off (the backlog stays on disk), resume by itself.
            delay = min(delay * 2, self.settings.upload.max_backoff_s) * random.uniform(0.8, 1.2) \
                if summary.failed else self.settings.upload.scan_interval_s
            if summary.failed:
                log.warning("%d call(s) not archived yet; retrying in %.1f s",
                            len(summary.failed), delay)
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                pass

    # -- one call (runs in a worker thread) -----------------------------------------------------
    def ship(self, manifest_path: Path) -> str:
        try:
            raw = manifest_path.read_bytes()
            m = CallManifest.model_validate_json(raw)
        except (OSError, ValidationError, ValueError) as exc:
            self.quarantine(manifest_path, None, f"unreadable manifest: {exc}")
            raise Quarantined("unreadable manifest") from exc
        base = self.key_base(m)
        tags = tagging_header(tags_for(m))
        lock = self.lock_for(m)
        wav = self.spool / f"{m.call_id}.wav"
        fresh = False  # the recording was uploaded just now: its manifest cannot be there yet
        if m.recording is not None and m.status is not RecordingStatus.UNRECORDED:
            fresh = self._ship_recording(m, wav, base + ".wav", tags, lock)
        digest = hashlib.sha256(raw).hexdigest()
        if fresh or not self.store.verified(base + ".json", len(raw), digest):
            vouched = self.store.put_bytes(base + ".json", raw, digest, tags,
                                           self.metadata(m, digest), lock, "application/json")
            if not vouched and not self.store.verified(base + ".json", len(raw), digest):
                raise StoreError(f"S3 put {base}.json: not verified after upload")
        if manifest_path.read_bytes() != raw:
            # Changed while we shipped it (``callrec outcome set``): the next scan ships the new
            # version; removing it now would lose the change.
            log.info("[%s] manifest changed during upload; shipping again", m.call_id)
            return m.call_id
        self.clean_up(m, manifest_path, wav)
        log.info("[%s] archived: s3://%s/%s.{wav,json} (%s, outcome %s)", m.call_id,
                 self.settings.s3.bucket, base, m.status.value, m.outcome)
        return m.call_id

    def _ship_recording(self, m: CallManifest, wav: Path, key: str, tags: str,
                        lock: Lock) -> bool:
        """Ship and verify the recording; True if it was uploaded now (False: already there)."""
        assert m.recording is not None
        if not wav.exists():
            self.quarantine(self.spool / f"{m.call_id}.json", None, "recording file missing")
            raise Quarantined("recording file missing")
        digest, size = sha256_file(wav), wav.stat().st_size
        if m.recording.sha256 and digest != m.recording.sha256:
            self.quarantine(self.spool / f"{m.call_id}.json", wav,
                            f"SHA-256 {digest} differs from the manifest's {m.recording.sha256}")
            raise Quarantined("checksum mismatch")
        if self.store.verified(key, size, digest):
            return False  # shipped before a restart
        vouched = self.store.put_file(key, wav, digest, tags, self.metadata(m, digest), lock,
                                      "audio/wav")
        if not vouched and not self.store.verified(key, size, digest):
            raise StoreError(f"S3 put {key}: not verified after upload")
        return True

    def key_base(self, m: CallManifest) -> str:
        at = m.entered_at
        return self.settings.upload.key_template.format(
            yyyy=f"{at:%Y}", mm=f"{at:%m}", dd=f"{at:%d}", call_id=m.call_id)

    def lock_for(self, m: CallManifest) -> Lock:
        r = self.settings.retention
        rule = r.outcomes.get(m.outcome)
        days = rule.retention_days if rule and rule.retention_days else r.days
        until = m.entered_at + timedelta(days=days) if r.mode else None
        return Lock(r.mode, until, bool(rule and rule.legal_hold))

    @staticmethod
    def metadata(m: CallManifest, sha256_hex: str) -> dict[str, str]:
        """Immutable facts (tags stay mutable under Object Lock); ASCII only."""
        notice = m.notice
        return {
            "call-id": m.call_id, "sha256": sha256_hex, "schema-version": str(m.schema_version),
            "status": m.status.value, "notice-completed": str(notice.completed).lower(),
            "notice-language": notice.language or "",
            "notice-started-at": notice.started_at.isoformat() if notice.started_at else "",
        }

    def clean_up(self, m: CallManifest, manifest: Path, wav: Path) -> None:
        files = [wav, self.spool / f"{m.call_id}.closed", manifest]
        if self.settings.upload.after_upload == "move":
            done = self.spool / "done"
            done.mkdir(exist_ok=True)
            for path in files:
                if path.exists():
                    shutil.move(str(path), done / path.name)
        else:
            for path in files:
                path.unlink(missing_ok=True)

    def quarantine(self, manifest: Path, wav: Path | None, reason: str) -> None:
        target = self.spool / "quarantine"
        target.mkdir(exist_ok=True)
        for path in (manifest, wav):
            if path is not None and path.exists():
                shutil.move(str(path), target / path.name)
        (target / f"{manifest.stem}.reason.json").write_text(json.dumps({"reason": reason}))
        log.error("[%s] quarantined: %s", manifest.stem, reason)
