"""The ``[webhooks]`` section: where the outbox is, how deliveries retry, and the endpoints.

Read by every service that emits or delivers (callrec ari, callrec upload), from the one file::

    [webhooks]
    outbox = "/var/lib/callrec/webhooks"
    [webhooks.endpoints.crm]
    url = "https://crm.example.jp/hooks/callrec"
    events = ["call.archived", "call.flagged"]
    # secret and signing_key in secrets.env: CALLREC_WEBHOOKS__ENDPOINTS__CRM__SECRET=whsec_...
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from callrec.sections import Section
from callrec.webhooks.signing import Ed25519Key, HmacKey

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # a directory name and a metric label


class EventType(StrEnum):
    CALL_ARCHIVED = "call.archived"
    CALL_UNRECORDED = "call.unrecorded"
    RECORDING_INTERRUPTED = "recording.interrupted"
    CALL_FLAGGED = "call.flagged"


class Endpoint(Section):
    """One receiver. Signed with ``secret`` (Standard Webhooks ``v1``, HMAC-SHA256, a
    ``whsec_`` key shared with the receiver), ``signing_key`` (``v1a``, Ed25519, a ``whsk_``
    private key: the receiver holds only its ``whpk_`` public key) or both."""

    url: str
    events: list[EventType] = Field(default_factory=lambda: list(EventType))
    secret: SecretStr = SecretStr("")
    signing_key: SecretStr = SecretStr("")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials (the signature authenticates callrec)")
        return url

    @model_validator(mode="after")
    def _signed(self) -> Endpoint:
        if not self.secret.get_secret_value() and not self.signing_key.get_secret_value():
            raise ValueError("needs a secret (whsec_…) or a signing_key (whsk_…): every "
                             "delivery is signed")
        if self.secret.get_secret_value():
            HmacKey.parse(self.secret.get_secret_value())
        if self.signing_key.get_secret_value():
            Ed25519Key.parse(self.signing_key.get_secret_value())
        return self


class WebhookSettings(Section):
    outbox: Path = Path("/var/lib/callrec/webhooks")
    timeout_s: float = Field(10.0, gt=0, le=300)  # one attempt, connect to response
    retry_first_s: float = Field(5.0, gt=0)  # the first retry of an event; doubling from there
    retry_max_s: float = Field(300.0, gt=0)  # at most this between two attempts of an event
    # Not delivered within this long: moved to <outbox>/<endpoint>/dead/ (metric, log).
    max_age_h: float = Field(72.0, gt=0, le=24 * 30)
    concurrency: int = Field(4, ge=1, le=64)  # deliveries in flight per endpoint
    poll_s: float = Field(1.0, gt=0, le=60)  # how soon another service's event is seen
    endpoints: dict[str, Endpoint] = Field(default_factory=dict)

    @field_validator("endpoints")
    @classmethod
    def _names(cls, endpoints: dict[str, Endpoint]) -> dict[str, Endpoint]:
        for name in endpoints:
            if not _NAME.match(name):
                raise ValueError(f"endpoint name {name!r}: letters, digits, _ and - only")
        return endpoints

    @model_validator(mode="after")
    def _retries(self) -> WebhookSettings:
        if self.retry_first_s > self.retry_max_s:
            raise ValueError("retry_first_s must not exceed retry_max_s")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.endpoints)
