"""The settings sections the uploader and the archive share: where the bucket is, how calls are
laid out in it, and how long they are kept (Object Lock). Each service's settings compose these
sections (uploader/config.py, archive/config.py); neither inherits the other's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from callrec.manifest import CallManifest
from callrec.sections import Section


@dataclass(frozen=True)
class Lock:
    """Object Lock parameters of one call's objects."""

    mode: str  # "" = none
    until: datetime | None
    legal_hold: bool


class S3Settings(Section):
    endpoint: str | None = None  # None: AWS; else an S3-compatible store's URL
    region: str = "us-east-1"
    bucket: str = "callrec"
    access_key: str = ""
    secret_key: SecretStr = SecretStr("")
    sse: Literal["", "AES256", "aws:kms"] = ""
    storage_class: str = ""
    # Where a call's objects go, without the .wav/.json suffix; {yyyy}/{mm}/{dd} are the call's
    # UTC entry date (callrec/s3/layout.py). Every uploader and archive of a bucket must agree.
    key_template: str = "recordings/{yyyy}/{mm}/{dd}/{call_id}"

    @field_validator("key_template")
    @classmethod
    def _has_call_id(cls, template: str) -> str:
        if not template.endswith("{call_id}") or template.startswith("/"):
            raise ValueError("key_template must end with {call_id} and not start with /")
        try:
            template.format(yyyy="2026", mm="01", dd="01", call_id="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"key_template {template!r}: only {{yyyy}} {{mm}} {{dd}} "
                             f"{{call_id}} may appear ({exc})") from exc
        return template


class OutcomeRule(Section):
    legal_hold: bool = False
    retention_days: int | None = Field(None, ge=1)


class RetentionSettings(Section):
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

    def lock_from(self, now: datetime) -> Lock:
        """The bucket's default retention for an object written now (audit rows)."""
        return Lock(self.mode, now + timedelta(days=self.days) if self.mode else None, False)
