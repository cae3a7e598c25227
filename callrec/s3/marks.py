"""Marked callers, shared through the bucket by every archive server and every callrec host.

A supervisor marks a caller number in the archive (audited), or the archive marks it itself once
the number has ``auto.calls`` calls ended for harassment within ``auto.days`` days. Each mark is
one object, ``marks/<number>.json``; unmarking writes a new version with ``active: false`` (the
bucket keeps every version under Object Lock: who marked whom, and when, stays on record).
callrec reads the prefix every ``marks.refresh_s`` seconds (ari_app/marked.py): a mark made on
any archive server reaches every Asterisk host within that delay.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from callrec.s3.settings import RetentionSettings
from callrec.s3.store import Store

PREFIX = "marks/"
NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")


class Treatment(StrEnum):
    """What callrec does with a marked caller's call at entry (ari_app/flow.py)."""

    # Gentlest first: the archive's forms list them in this order.
    WARNING = "warning"  # the recorded warning after the notice, before the route
    SUPERVISOR = "supervisor"  # routed to the supervisors' route instead of the DID's
    REFUSE = "refuse"  # the refusal prompt, then hung up: nothing recorded, no agent


class Mark(BaseModel):
    number: str = Field(pattern=NUMBER.pattern)  # E.164 (callrec/numbering.py) or as dialled
    treatment: Treatment
    active: bool = True
    reason: Literal["manual", "auto"] = "manual"
    by: str = ""
    at: datetime
    note: str = Field("", max_length=500)


class MarkStore:
    def __init__(self, store: Store, retention: RetentionSettings) -> None:
        self.store, self.retention = store, retention

    @staticmethod
    def key(number: str) -> str:
        if not NUMBER.match(number):
            raise ValueError(f"not a caller number: {number!r}")
        return f"{PREFIX}{number}.json"

    def put(self, mark: Mark) -> None:
        body = mark.model_dump_json().encode()
        self.store.put_bytes(self.key(mark.number), body, hashlib.sha256(body).hexdigest(), "",
                             {}, self.retention.lock_from(mark.at), "application/json")

    def get(self, number: str) -> Mark | None:
        body = self.store.get_bytes(self.key(number))
        return None if body is None else Mark.model_validate_json(body)

    def changed(self, known: dict[str, str]) -> tuple[dict[str, str], list[Mark | None]]:
        """The marks' current ETags, and the marks whose object changed since ``known`` (a
        key -> ETag map from the last call): one LIST, then a GET per changed mark only."""
        now = dict(self.store.list_keys(PREFIX))
        fresh: list[Mark | None] = []
        for key, etag in now.items():
            if known.get(key) == etag:
                continue
            body = self.store.get_bytes(key)
            try:
                fresh.append(None if body is None else Mark.model_validate_json(body))
            except ValidationError:
                fresh.append(None)  # not ours: ignored (and not read again until it changes)
        return now, fresh
