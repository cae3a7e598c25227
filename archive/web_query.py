"""Search parameters in URLs: the pages, the CSV export and the JSON API share the names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from archive import ArchiveError
from archive.catalog import Query


class BadQuery(ArchiveError):
    pass


def query_from(params: Any, limit_default: int = 100) -> Query:
    """A search from URL query parameters (pages, CSV and API share the names)."""
    def number(name: str) -> float | None:
        value = params.get(name, "")
        return float(value) if value != "" else None

    def day(name: str, plus: int = 0) -> datetime | None:
        value = params.get(name, "")
        if not value:
            return None
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return at + timedelta(days=plus) if len(value) == 10 else at

    hold = params.get("hold", "")
    try:
        return Query(
            caller=params.get("caller", "")[:64], caller_prefix=params.get("caller_prefix",
                                                                           "")[:64],
            agent=params.get("agent", "")[:128], outcome=params.get("outcome", "")[:32],
            did=params.get("did", "")[:64], status=params.get("status", "")[:16],
            since=day("since"), until=day("until", plus=1),  # a date "until" includes the day
            min_duration_s=number("min_duration"), max_duration_s=number("max_duration"),
            legal_hold=None if hold == "" else hold == "1",
            limit=int(params.get("limit", limit_default)),
            before=int(params["before"]) if params.get("before") else None)
    except ValueError as exc:
        raise BadQuery(f"bad search: {exc}") from exc


def link_params(params: Any, **changes: object) -> str:
    kept = {k: v for k, v in params.items() if v != "" and k != "before"}
    kept.update({k: str(v) for k, v in changes.items()})
    return urlencode(kept)
