"""Identifiers and patterns of the contract: the call id and the outcome.

Every part that reads or checks one imports it from here, so the shape is stated once: the call
flow makes call ids, the uploader and the archive derive object keys and check user input.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

CALL_ID_TIME = "%Y%m%dT%H%M%SZ"  # the first 16 characters of a call id
# new_call_id's shape: sortable, unique across hosts sharing a bucket, safe as a file name and
# an S3 key; the groups are the entry date (the object layout files calls by day).
CALL_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})T\d{6}Z-[0-9a-f]{12}$")

# An outcome callrec derives, a dialplan sets (CALLREC_OUTCOME) or ops choose after the call.
OUTCOME_RE = r"^[a-z0-9_]{1,32}$"
OUTCOME = re.compile(OUTCOME_RE)


def new_call_id(at: datetime) -> str:
    """Sortable and unique across hosts sharing a bucket; never derived from caller input."""
    return f"{at.strftime(CALL_ID_TIME)}-{secrets.token_hex(6)}"


def is_call_id(text: str) -> bool:
    return CALL_ID.match(text) is not None


def call_id_time(call_id: str) -> datetime:
    """When the call with this id entered callrec (to the second)."""
    return datetime.strptime(call_id[:16], CALL_ID_TIME).replace(tzinfo=UTC)


def is_outcome(text: str) -> bool:
    return OUTCOME.match(text) is not None
