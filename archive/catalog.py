"""The catalog: an SQLite index of archived calls, because S3 cannot search tags.

S3 stays the source of truth: every row comes from a manifest object (``sync``) and the catalog can
be rebuilt from the bucket at any time. Only the columns ops search and list are kept; a call's
page reads its manifest from S3. The audit log lives here too (append-only, enforced by triggers)
and is shipped to S3 by ``archive.audit``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from archive import ArchiveError
from archive.flags import FlagSettings, mark_repeats
from archive.rows import (
    ADDED,
    COLUMNS,
    REVIEWED,
    SCHEMA,
    UPSERT,
    agent_keys,
    from_ms,
    row_for,
    to_ms,
)
from callrec.manifest import CallManifest, normalise_number
from callrec.numbering import NumberingPlan


class CatalogError(ArchiveError):
    pass


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


class Catalog:
    def __init__(self, path: Path, plan: NumberingPlan,
                 flags: FlagSettings | None = None) -> None:
        self.plan = plan
        self.flags = flags or FlagSettings()
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise CatalogError(f"catalog {path}: {exc}") from exc
        self.lock = threading.RLock()

    def _migrate(self) -> None:
        have = {row[1] for row in self.db.execute("PRAGMA table_info(calls)")}
        for column, kind in ADDED.items():
            if column not in have:
                self.db.execute(f"ALTER TABLE calls ADD COLUMN {column} {kind}")
        self.db.execute("CREATE INDEX IF NOT EXISTS calls_queue ON calls (queue, entered_at)")
        self.db.execute("CREATE INDEX IF NOT EXISTS calls_flagged ON calls (entered_at) "
                        "WHERE flags != '' AND reviewed = ''")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise CatalogError(f"catalog {self.path}: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------------
    def upsert(self, rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        with self.transaction() as db:
            for row in rows:
                # A review outlives a new version of the manifest (an outcome changed).
                before = db.execute("SELECT reviewed FROM calls WHERE call_id = ?",
                                    (row[0],)).fetchone()
                if before and before[0] and not row[REVIEWED]:
                    row = (*row[:REVIEWED], before[0], *row[REVIEWED + 1:])
                db.execute("DELETE FROM calls WHERE call_id = ?", (row[0],))  # keeps daily right
                db.execute("DELETE FROM call_agents WHERE call_id = ?", (row[0],))
                db.execute(UPSERT, row)
                db.executemany("INSERT OR IGNORE INTO call_agents VALUES (?, ?, ?)",
                               [(a, row[1], row[0]) for a in agent_keys(row)])
                mark_repeats(db, row[4], row[1], self.flags)
                count += 1
        return count

    def add(self, m: CallManifest, manifest_key: str, etag: str, legal_hold: bool) -> None:
        self.upsert([row_for(m, manifest_key, etag, self.plan, legal_hold, self.flags)])

    def set_fields(self, call_id: str, **values: Any) -> bool:
        """Change ``outcome`` or ``legal_hold`` of a call; False if the call is not catalogued."""
        allowed = {"outcome", "legal_hold", "etag", "reviewed"}
        if not values or set(values) - allowed:
            raise CatalogError(f"cannot set {sorted(values)}")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.transaction() as db:
            cur = db.execute(f"UPDATE calls SET {sets} WHERE call_id = ?",
                             (*values.values(), call_id))
            return cur.rowcount == 1

    def clear(self) -> None:
        """Forget every call (``sync --rebuild``); the audit log stays."""
        with self.transaction() as db:
            for table in ("calls", "call_agents", "daily", "applied_changes"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM state WHERE name != 'audit_shipped'")

    def etags(self, keys: list[str]) -> dict[str, str]:
        with self.lock:
            found: dict[str, str] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                found.update(self.db.execute(
                    "SELECT manifest_key, etag FROM calls WHERE manifest_key IN "
                    f"({', '.join('?' * len(chunk))})", chunk).fetchall())
            return found

    def get_state(self, name: str, default: str = "") -> str:
        with self.lock:
            row = self.db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else default

    def set_state(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (name, value))

    # -- reading ---------------------------------------------------------------------------------
    def count(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT count(*) FROM calls").fetchone()[0])

    def get(self, call_id: str) -> dict[str, Any] | None:
        with self.lock:
            cur = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls WHERE call_id = ?",
                                  (call_id,))
            row = cur.fetchone()
        return _as_dict(row) if row else None

    def search(self, q: Query) -> list[dict[str, Any]]:
        where, args = self._where(q)
        table, order = "calls", "calls.entered_at"
        if q.agent:  # the agents index orders by time: no sort of every call an agent took
            table, order = "call_agents a JOIN calls USING (call_id)", "a.entered_at"
            where.insert(0, "a.agent = ?")
            args.insert(0, q.agent.strip().casefold())
        sql = (f"SELECT {', '.join('calls.' + c for c in COLUMNS)} FROM {table}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {order} DESC LIMIT ?")
        with self.lock:
            try:
                rows = self.db.execute(sql, (*args, max(1, min(q.limit, 1000)))).fetchall()
            except sqlite3.Error as exc:
                raise CatalogError(f"search: {exc}") from exc
        return [_as_dict(r) for r in rows]

    def _where(self, q: Query) -> tuple[list[str], list[Any]]:
        prefix = self.plan.e164(normalise_number(q.caller_prefix), partial=True)
        wanted: list[tuple[bool, str, tuple[Any, ...]]] = [
            (bool(q.caller), "calls.caller_e164 = ?",
             (self.plan.e164(normalise_number(q.caller)),)),
            (bool(q.caller_prefix), "calls.caller_e164 >= ? AND calls.caller_e164 < ?",
             (prefix, prefix + "\U0010ffff")),
            (bool(q.outcome), "calls.outcome = ?", (q.outcome,)),
            (bool(q.did), "calls.did = ?", (q.did,)),
            (bool(q.queue), "calls.queue = ?", (q.queue,)),
            (bool(q.status), "calls.status = ?", (q.status,)),
            (q.since is not None, "calls.entered_at >= ?", (q.since and to_ms(q.since),)),
            (q.until is not None, "calls.entered_at < ?", (q.until and to_ms(q.until),)),
            (q.before is not None, "calls.entered_at < ?", (q.before,)),
            (q.min_duration_s is not None, "calls.duration_s >= ?", (q.min_duration_s,)),
            (q.max_duration_s is not None, "calls.duration_s <= ?", (q.max_duration_s,)),
            (q.legal_hold is not None, "calls.legal_hold = ?", (int(bool(q.legal_hold)),)),
            (q.flag == "any", "calls.flags != ''", ()),
            (q.flag not in ("", "any"), "(',' || calls.flags || ',') LIKE ?",
             (f"%,{q.flag},%",)),
            (q.unreviewed, "calls.reviewed = ''", ()),
        ]
        where = [clause for on, clause, _ in wanted if on]
        args = [value for on, _, values in wanted if on for value in values]
        return where, args

    def per_queue(self, days: int, today: date | None = None) -> list[dict[str, Any]]:
        """Calls per queue over the last ``days`` days: answered, abandoned in the queue, no
        agent, unrecorded (calls that entered no queue are under "")."""
        end = today or datetime.now(UTC).date()
        since = datetime.combine(end - timedelta(days=days - 1), datetime.min.time(), UTC)
        with self.lock:
            rows = self.db.execute(
                "SELECT queue, count(*), sum(outcome = 'completed'), "
                "sum(abandoned = 'queue'), sum(outcome = 'no_agent'), "
                "sum(status = 'unrecorded'), avg(queue_wait_s) FROM calls "
                "WHERE entered_at >= ? GROUP BY queue ORDER BY queue = '', queue",
                (to_ms(since),)).fetchall()
        keys = ("queue", "calls", "answered", "abandoned_in_queue", "no_agent", "unrecorded",
                "average_wait_s")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def daily(self, days: int, today: date | None = None) -> list[dict[str, Any]]:
        """Calls per day over the last ``days`` days, by status, with notice failures."""
        end = today or datetime.now(UTC).date()
        start = end - timedelta(days=days - 1)
        out = {(start + timedelta(d)).isoformat(): {"recorded": 0, "unrecorded": 0,
                                                     "interrupted": 0, "notice_failed": 0}
               for d in range(days)}
        with self.lock:
            rows = self.db.execute("SELECT day, status, calls, notice_failed FROM daily "
                                   "WHERE day >= ? AND day <= ?",
                                   (start.isoformat(), end.isoformat())).fetchall()
        for day, status, calls, failed in rows:
            if day in out and status in out[day]:
                out[day][status] += calls
                out[day]["notice_failed"] += failed
        return [{"day": day, **counts} for day, counts in out.items()]

    # -- audit -----------------------------------------------------------------------------------
    def audit(self, actor: str, role: str, via: str, action: str, call_id: str | None,
              detail: dict[str, Any], address: str = "") -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO audit (at, actor, role, via, action, call_id, detail, address) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (datetime.now(UTC).isoformat(timespec="milliseconds"), actor, role, via, action,
                 call_id, json.dumps(detail, ensure_ascii=False, default=str), address))
            return int(cur.lastrowid or 0)

    def audit_rows(self, after_id: int = 0, limit: int = 200,
                   newest_first: bool = False) -> list[dict[str, Any]]:
        order = "DESC" if newest_first else "ASC"
        with self.lock:
            cur = self.db.execute(
                "SELECT id, at, actor, role, via, action, call_id, detail, address FROM audit "
                f"WHERE id > ? ORDER BY id {order} LIMIT ?", (after_id, limit))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def audit_page(self, f: AuditFilter) -> list[dict[str, Any]]:
        """Audit rows matching ``f``, newest first, older than ``f.before_id`` (paging)."""
        where, args = ["id < ?"], list[int | str]([f.before_id or 2**62])
        for column, value in (("actor", f.actor), ("action", f.action), ("call_id", f.call_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if f.since is not None:
            where.append("at >= ?")
            args.append(f.since.astimezone(UTC).isoformat(timespec="milliseconds"))
        if f.until is not None:
            where.append("at < ?")
            args.append(f.until.astimezone(UTC).isoformat(timespec="milliseconds"))
        with self.lock:
            cur = self.db.execute(
                "SELECT id, at, actor, role, via, action, call_id, detail, address FROM audit "
                f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", (*args, f.limit))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def change_applied(self, key: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM applied_changes WHERE key = ?",
                                   (key,)).fetchone() is not None

    def mark_change_applied(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO applied_changes VALUES (?)", (key,))


def _as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(COLUMNS, row, strict=True))
    out["entered_at"] = from_ms(out["entered_at"])
    out["agents"] = json.loads(out["agents"])
    out["notice_completed"] = bool(out["notice_completed"])
    out["notice_failed"] = bool(out["notice_failed"])
    out["legal_hold"] = bool(out["legal_hold"])
    return out
