"""Settings of the uploader: one pydantic-settings object, env prefix ``CALLREC_``.

Shares the ``CALLREC_`` prefix with the call flow so that one environment file can configure both;
its own keys live under ``s3``, ``upload`` and ``retention``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from callrec.manifest import CallManifest
from callrec.numbering import NumberingPlan


@dataclass(frozen=True)
class Lock:
    """Object Lock parameters of one call's objects."""

    mode: str  # "" = none
    until: datetime | None
    legal_hold: bool


class S3Settings(BaseModel):
    endpoint: str | None = None  # None: AWS; else an S3-compatible store's URL
    region: str = "us-east-1"
    bucket: str = "callrec"
    access_key: str = ""
    secret_key: SecretStr = SecretStr("")
    sse: Literal["", "AES256", "aws:kms"] = ""
    storage_class: str = ""


class OutcomeRule(BaseModel):
    legal_hold: bool = False
    retention_days: int | None = Field(None, ge=1)


class RetentionSettings(BaseModel):
    mode: Literal["COMPLIANCE", "GOVERNANCE", ""] = "COMPLIANCE"  # "" = no Object Lock retention
    days: int = Field(365, ge=1)
    # e.g. {"harassment": {"legal_hold": true, "retention_days": 3650}}
    outcomes: dict[str, OutcomeRule] = Field(default_factory=dict)

    def lock_for(self, m: CallManifest, now: datetime | None = None) -> Lock:
        """Retention counts from the call; a call shipped (or re-classified) after that date
        is still kept a day: S3 refuses a retain-until date in the past (InvalidRequest)."""
        rule = self.outcomes.get(m.outcome)
        days = rule.retention_days if rule and rule.retention_days else self.days
        floor = (now or datetime.now(UTC)) + timedelta(days=1)
        until = max(m.entered_at + timedelta(days=days), floor) if self.mode else None
        return Lock(self.mode, until, bool(rule and rule.legal_hold))


class UploadSettings(BaseModel):
    spool: Path = Path("/var/spool/asterisk/callrec")
    key_template: str = "recordings/{yyyy}/{mm}/{dd}/{call_id}"  # + .wav / .json
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

    def key_base(self, m: CallManifest) -> str:
        """The object key of a call without the .wav/.json suffix."""
        at = m.entered_at
        return self.key_template.format(yyyy=f"{at:%Y}", mm=f"{at:%m}", dd=f"{at:%d}",
                                        call_id=m.call_id)


class UploaderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLREC_", env_nested_delimiter="__",
                                      extra="ignore")

    s3: S3Settings = S3Settings()
    upload: UploadSettings = UploadSettings()
    retention: RetentionSettings = RetentionSettings()
    # Caller numbers are catalogued in E.164 too, so "03-1234-5678" finds "+81312345678".
    numbering: NumberingPlan = NumberingPlan()
