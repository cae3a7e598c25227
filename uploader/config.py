"""Settings of the uploader: one pydantic-settings object, env prefix ``CALLREC_``.

Shares the ``CALLREC_`` prefix with the call flow so that one environment file can configure both;
its own keys live under ``s3``, ``upload`` and ``retention``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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


class UploaderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLREC_", env_nested_delimiter="__",
                                      extra="ignore")

    s3: S3Settings = S3Settings()
    upload: UploadSettings = UploadSettings()
    retention: RetentionSettings = RetentionSettings()
