"""Request inputs: every value from a URL or a body is parsed here, and a bad one is a
``BadQuery`` (400), never an exception deeper down (a 500). The pages, the CSV export and the
JSON API share the names."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from archive import ArchiveError
from archive.catalog import AuditFilter, Query
from archive.flags import FLAGS
from callrec.manifest import AudioVerdict

MAX_LIMIT = 10_000
MAX_EPOCH_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class BadQuery(ArchiveError):
    pass


def whole(value: str, name: str, low: int, high: int) -> int:
    """A whole number written in plain digits, within [low, high]."""
    if not _DIGITS.match(value) or not low <= int(value) <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    return int(value)


def query_from(params: Any, limit_default: int = 100) -> Query:
    """A search from URL query parameters (pages, CSV and API share the names)."""
    try:
        return _query(params, limit_default)
    except (ValueError, OverflowError) as exc:
        raise BadQuery(f"bad search: {exc}") from exc


def _query(params: Any, limit_default: int) -> Query:  # noqa: C901
    def number(name: str) -> float | None:
        value = params.get(name, "")
        if value == "":
            return None
        parsed = float(value)
        if not math.isfinite(parsed) or parsed < 0:
            raise ValueError(f"{name} must be a number of seconds")
        return parsed

    def day(name: str, plus: int = 0) -> datetime | None:
        value = params.get(name, "")
        if not value:
            return None
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if len(value) != 10 or not plus:
            return at
        # "until" a date includes the day; until the last day there is, then.
        return at + timedelta(days=plus) if at.date() < datetime.max.date() else \
            datetime.max.replace(tzinfo=UTC)

    hold = params.get("hold", "")
    before = params.get("before", "")
    return Query(
        caller=params.get("caller", "")[:64], caller_prefix=params.get("caller_prefix",
                                                                       "")[:64],
        agent=params.get("agent", "")[:128], outcome=params.get("outcome", "")[:32],
        did=params.get("did", "")[:64], queue=params.get("queue", "")[:128],
        status=params.get("status", "")[:16],
        since=day("since"), until=day("until", plus=1),  # a date "until" includes the day
        min_duration_s=number("min_duration"), max_duration_s=number("max_duration"),
        legal_hold=None if hold == "" else hold == "1",
        flag=flag_of(params.get("flag", "")), unreviewed=params.get("unreviewed") == "1",
        audio=audio_of(params.get("audio", "")),
        limit=whole(str(params.get("limit", limit_default)), "limit", 1, MAX_LIMIT),
        before=whole(before, "before", 0, MAX_EPOCH_MS) if before else None)


AUDIO = ("problem", *AudioVerdict)


def audio_of(value: str) -> str:
    if value not in ("", *AUDIO):
        raise BadQuery(f"audio must be one of {', '.join(AUDIO)}")
    return value


def flag_of(value: str) -> str:
    if value not in ("", "any", *FLAGS):
        raise BadQuery(f"flag must be one of any, {', '.join(FLAGS)}")
    return value


def audit_filter_from(params: Any) -> AuditFilter:
    """The audit page's filter and page from URL query parameters."""
    try:
        return AuditFilter(
            actor=params.get("actor", "")[:64], action=params.get("action", "")[:32],
            call_id=params.get("call", "")[:64], since=_moment(params.get("since", "")),
            until=_moment(params.get("until", "")),
            before_id=whole(params["before"], "before", 1, 2**62) if params.get("before")
            else None, limit=whole(params.get("limit", "200"), "limit", 1, 1000))
    except (ValueError, OverflowError) as exc:
        raise BadQuery(f"bad audit filter: {exc}") from exc


def _moment(value: str) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def link_params(params: Any, **changes: object) -> str:
    kept = {k: v for k, v in params.items() if v != "" and k != "before"}
    kept.update({k: str(v) for k, v in changes.items()})
    return urlencode(kept)
