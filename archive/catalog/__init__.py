"""The catalog's interface: what the archive keeps in its index of archived calls, because S3
cannot search tags. A backend (SQLite today, ``sqlite.py``; a database server next) implements
:class:`Catalog`; nothing else in the archive speaks SQL, and every row comes out as a typed
object (``rows.py``), never a dict.

S3 stays the source of truth: every call row comes from a manifest object (``sync``) and the
catalog can be rebuilt from the bucket at any time. The audit log lives here too (append-only)
and is shipped to S3 by the service; so do the web sessions and the change feed's bookkeeping.
The domain service (archive/service.py) is the one door to it: it checks roles and audits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from archive import ArchiveError
from archive.catalog.rows import AuditRow, CallRow, DayCounts, QueueCounts, SessionRow
from callrec.manifest import CallManifest

__all__ = ["AuditFilter", "AuditRow", "CallRow", "Catalog", "CatalogError", "DayCounts", "Query",
           "QueueCounts", "SessionRow", "described"]


class CatalogError(ArchiveError):
    """The catalog cannot be opened, read or written (the message names it, no secret)."""


@dataclass
class Query:
    """A search. ``caller`` matches exactly, ``caller_prefix`` by prefix; both accept any
    spelling (``03-1234-5678``, ``+81 3 1234 5678``). Dates are UTC, ``until`` exclusive."""

    caller: str = ""
    caller_prefix: str = ""
    agent: str = ""
    outcome: str = ""
    did: str = ""
    queue: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    legal_hold: bool | None = None
    flag: str = ""  # "any", or one of archive/flags.py FLAGS
    unreviewed: bool = False  # flags no supervisor has reviewed yet
    audio: str = ""  # "problem" (any verdict but clean), or one AudioVerdict
    limit: int = 100
    before: int | None = None  # entered_at (ms) of the last row of the previous page

    def describe(self) -> dict[str, Any]:
        return described(self)


def described(search: object) -> dict[str, Any]:
    """The filters of a search that were set, for the audit log."""
    out = {k: (v.isoformat() if isinstance(v, datetime) else v)
           for k, v in vars(search).items() if v not in ("", None)}
    out.pop("limit", None)
    return out


@dataclass
class AuditFilter:
    """Which audit rows to show: by who, what, which call, when; a page of ``limit``."""

    actor: str = ""
    action: str = ""
    call_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 200


class Catalog(Protocol):
    """What a catalog backend does. Every method may raise :class:`CatalogError`."""

    def close(self) -> None: ...

    # -- calls -----------------------------------------------------------------------------------
    def add(self, m: CallManifest, manifest_key: str, etag: str, legal_hold: bool) -> None:
        """Catalogue (or replace) a call from its manifest; a review outlives a new version."""

    def upsert(self, rows: Iterable[CallRow]) -> int: ...

    def get(self, call_id: str) -> CallRow | None: ...

    def search(self, q: Query) -> list[CallRow]:
        """Newest first, at most ``min(q.limit, 1000)`` rows."""

    def count(self) -> int: ...

    def etags(self, keys: list[str]) -> dict[str, str]:
        """The ETag catalogued for each manifest key that is catalogued."""

    def set_legal_hold(self, call_id: str, on: bool) -> bool:
        """False if the call is not catalogued (likewise below)."""

    def set_reviewed(self, call_id: str, reviewed: str) -> bool: ...

    def clear(self) -> None:
        """Forget every call (``sync --rebuild``); the audit log and sessions stay."""

    def daily(self, days: int, today: date | None = None) -> list[DayCounts]: ...

    def per_queue(self, days: int, today: date | None = None) -> list[QueueCounts]: ...

    def callers_with(self, outcome: str, since: datetime, at_least: int,
                     number: str | None = None) -> list[str]:
        """Caller numbers (or just ``number``) with ``at_least`` calls ended as ``outcome``
        since then (the auto-marking rule, archive/marking.py)."""

    # -- audit -----------------------------------------------------------------------------------
    def audit(self, actor: str, role: str, via: str, action: str, call_id: str | None,
              detail: dict[str, Any], address: str = "") -> int: ...

    def audit_rows(self, after_id: int = 0, limit: int = 200,
                   newest_first: bool = False) -> list[AuditRow]: ...

    def audit_page(self, f: AuditFilter) -> list[AuditRow]:
        """Rows matching ``f``, newest first, older than ``f.before_id`` (paging)."""

    # -- bookkeeping: sync state and the change feed ---------------------------------------------
    def get_state(self, name: str, default: str = "") -> str: ...

    def set_state(self, name: str, value: str) -> None: ...

    def change_applied(self, key: str) -> bool: ...

    def mark_change_applied(self, key: str) -> None: ...

    # -- web sessions (archive/sessions.py keeps the rules) --------------------------------------
    def session_add(self, row: SessionRow, expired_before: float,
                    idle_before: float) -> None:
        """Add a session, dropping those started before ``expired_before`` or last seen
        before ``idle_before``."""

    def session_get(self, key: str) -> SessionRow | None: ...

    def session_touch(self, key: str, now: float) -> None: ...

    def session_drop(self, key: str) -> None: ...

    def set_language(self, user: str, lang: str) -> None: ...
