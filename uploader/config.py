"""Settings of the uploader: one pydantic-settings object, env prefix ``CALLREC_``.

Shares the ``CALLREC_`` prefix with the call flow so that one environment file can configure both;
its own keys live under ``upload``; ``s3``, ``retention`` and ``numbering`` are the sections it
shares with the archive (callrec/s3/settings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import AudioFormat
from callrec.numbering import NumberingPlan
from callrec.s3.settings import RetentionSettings, S3Settings
from callrec.sections import Section
from callrec.settings import CallrecSettings
from callrec.webhooks.settings import WebhookSettings


class UploadSettings(Section):
    spool: Path = Path("/var/spool/asterisk/callrec")
    after_upload: Literal["delete", "move"] = "delete"  # move: into <spool>/done/
    concurrency: int = Field(4, ge=1, le=64)
    multipart_threshold_mb: int = Field(64, ge=5)
    # New manifests are seen at once (inotify); a sweep of the spool catches anything missed.
    sweep_interval_s: float = Field(5.0, gt=0)
    max_backoff_s: float = Field(10.0, gt=0)  # S3 errors: exponential backoff with jitter
    journal: Path | None = None  # SQLite; default <spool>/.uploader.sqlite3
    keep_done_days: float = Field(7.0, ge=0)  # journal rows of archived calls
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9471, ge=0, le=65535)  # 0: no metrics endpoint
    # The archive catalog (SQLite) to add each archived call to at once; None: only
    # `callrec archive sync` adds them (from S3).
    catalog: Path | None = None
    # The recording's format in the archive: the WAV as recorded, FLAC (lossless) or Ogg Opus,
    # made here from the spool's WAV and verified by decoding it before anything is archived
    # (uploader/transcode.py). The manifest keeps the WAV's SHA-256 beside the object's.
    format: AudioFormat = AudioFormat.WAV
    opus_kbps: int = Field(16, ge=6, le=256)  # per channel's stream (stereo: two mono streams)
    # libopus's effort, 0-10: the same bytes; 0 took 44% of 10's CPU on speech (README).
    opus_complexity: int = Field(10, ge=0, le=10)
    # Archive the WAV too, beside the transcode: where a legal policy demands the bit-exact file.
    keep_original: bool = False
    transcode_workers: int = Field(0, ge=0, le=64)  # processes; 0: one per CPU core
    # Seconds a stop lets the calls being shipped finish: below the unit's TimeoutStopSec
    # (deploy/callrec-upload.service: 120). A second signal stops at once. In [upload], not at
    # the top: one file holds every service's settings, and each stops in its own time.
    shutdown_grace_s: float = Field(100.0, ge=0)


class UploaderSettings(CallrecSettings):
    s3: S3Settings = S3Settings()
    upload: UploadSettings = UploadSettings()
    retention: RetentionSettings = RetentionSettings()
    # Caller numbers are catalogued in E.164 too, so "03-1234-5678" finds "+81312345678".
    numbering: NumberingPlan = NumberingPlan()
    # This host's key and chain log (shared with `callrec ari`): the uploader publishes the
    # public keys and writes the chain's checkpoints (uploader/evidence.py).
    evidence: EvidenceSettings = EvidenceSettings()
    # call.archived for each call archived; the host's sender may run here (callrec/webhooks)
    webhooks: WebhookSettings = WebhookSettings()
