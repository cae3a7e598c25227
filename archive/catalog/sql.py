"""The catalog's queries, one text for both backends (archive/catalog/sqlite.py and
postgres.py): SQL both SQLite 3.35+ and PostgreSQL run alike (``ON CONFLICT``, ``RETURNING``,
``CASE`` for conditional counts, ``"user"`` quoted), with ``?`` placeholders that the PostgreSQL
backend hands its driver as ``%s``. A backend supplies the connection (``transaction`` and
``reading``), its schema and its migrations; everything a catalog does is here once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from archive.catalog import AuditFilter, Query
from archive.catalog.rows import (
    COLUMNS,
    AuditRow,
    CallRow,
    DayCounts,
    QueueCounts,
    SessionRow,
    row_for,
)
from archive.config import FlagSettings
from archive.flags import repeat_changes
from callrec.manifest import CallManifest, normalise_number
from callrec.numbering import NumberingPlan

AUDIT_COLUMNS = "id, at, actor, role, via, action, call_id, detail, address"
INSERT_CALL = (f"INSERT INTO calls ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(COLUMNS))})")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """What the queries need of a connection (sqlite3's, or postgres.py's adapter)."""

    def execute(self, sql: str, args: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, args: Any, /) -> Any: ...


def to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _count(column: str, value: str) -> str:
    """A conditional count both dialects run (PostgreSQL cannot sum a boolean)."""
    return f"sum(CASE WHEN {column} = '{value}' THEN 1 ELSE 0 END)"


class SqlCatalog:
    """Every query of the catalog; a backend derives from it and supplies the connection."""

    plan: NumberingPlan
    flags: FlagSettings

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Db]:
        """One write transaction (a backend's: BEGIN IMMEDIATE, a pooled connection)."""
        raise NotImplementedError

    def reading(self) -> AbstractContextManager[Db]:
        raise NotImplementedError

    def _lock_call(self, db: Db, call_id: str) -> None:
        """Serialise writers of one call (SQLite's BEGIN IMMEDIATE already serialises all)."""

    # -- calls -----------------------------------------------------------------------------------
    def upsert(self, rows: Iterable[CallRow]) -> int:
        count = 0
        with self.transaction() as db:
            for row in rows:
                self._lock_call(db, row.call_id)
                # A review outlives a new version of the manifest (an outcome changed).
                before = db.execute("SELECT reviewed FROM calls WHERE call_id = ?",
                                    (row.call_id,)).fetchone()
                values = _values(row)
                if before and before[0] and not row.reviewed:
                    values[COLUMNS.index("reviewed")] = before[0]
                db.execute("DELETE FROM calls WHERE call_id = ?", (row.call_id,))  # daily right
                db.execute("DELETE FROM call_agents WHERE call_id = ?", (row.call_id,))
                db.execute(INSERT_CALL, values)
                db.executemany("INSERT INTO call_agents VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                               [(a, to_ms(row.entered_at), row.call_id)
                                for a in row.agent_keys()])
                self._mark_repeats(db, row.caller_e164, to_ms(row.entered_at))
                count += 1
        return count

    def _mark_repeats(self, db: Db, caller_e164: str, entered_ms: int) -> None:
        if not caller_e164:  # anonymous callers are never repeat callers
            return
        window = int(self.flags.repeat_hours * 3600_000)
        calls = db.execute("SELECT call_id, entered_at, flags FROM calls WHERE caller_e164 = ? "
                           "AND entered_at >= ? AND entered_at <= ? ORDER BY entered_at",
                           (caller_e164, entered_ms - window, entered_ms + window)).fetchall()
        db.executemany("UPDATE calls SET flags = ? WHERE call_id = ?",
                       [(flags, call_id) for call_id, flags in
                        repeat_changes(calls, entered_ms, self.flags)])

    def add(self, m: CallManifest, manifest_key: str, etag: str, legal_hold: bool) -> None:
        self.upsert([row_for(m, manifest_key, etag, self.plan, legal_hold, self.flags)])

    def set_legal_hold(self, call_id: str, on: bool) -> bool:
        return self._set(call_id, "legal_hold", int(on))

    def set_reviewed(self, call_id: str, reviewed: str) -> bool:
        return self._set(call_id, "reviewed", reviewed)

    def _set(self, call_id: str, column: str, value: object) -> bool:
        with self.transaction() as db:
            cur = db.execute(f"UPDATE calls SET {column} = ? WHERE call_id = ?",
                             (value, call_id))
            return cur.rowcount == 1

    def clear(self) -> None:
        with self.transaction() as db:
            for table in ("calls", "call_agents", "daily", "applied_changes"):
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM state WHERE name != 'audit_shipped'")

    def etags(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.reading() as db:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                found.update(db.execute(
                    "SELECT manifest_key, etag FROM calls WHERE manifest_key IN "
                    f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def count(self) -> int:
        with self.reading() as db:
            return int(db.execute("SELECT count(*) FROM calls").fetchone()[0])

    def get(self, call_id: str) -> CallRow | None:
        with self.reading() as db:
            row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls WHERE call_id = ?",
                             (call_id,)).fetchone()
        return _call_row(row) if row else None

    def search(self, q: Query) -> list[CallRow]:
        where, args = self._where(q)
        table, order = "calls", "calls.entered_at"
        if q.agent:  # the agents index orders by time: no sort of every call an agent took
            table, order = "call_agents a JOIN calls USING (call_id)", "a.entered_at"
            where.insert(0, "a.agent = ?")
            args.insert(0, q.agent.strip().casefold())
        sql = (f"SELECT {', '.join('calls.' + c for c in COLUMNS)} FROM {table}"
               + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY {order} DESC LIMIT ?")
        with self.reading() as db:
            rows = db.execute(sql, (*args, max(1, min(q.limit, 1000)))).fetchall()
        return [_call_row(r) for r in rows]

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
            (q.audio == "problem", "calls.audio NOT IN ('', 'clean')", ()),
            (q.audio not in ("", "problem"), "calls.audio = ?", (q.audio,)),
            (q.flag not in ("", "any"), "(',' || calls.flags || ',') LIKE ?",
             (f"%,{q.flag},%",)),
            (q.unreviewed, "calls.reviewed = ''", ()),
        ]
        where = [clause for on, clause, _ in wanted if on]
        args = [value for on, _, values in wanted if on for value in values]
        return where, args

    def per_queue(self, days: int, today: date | None = None) -> list[QueueCounts]:
        end = today or datetime.now(UTC).date()
        since = datetime.combine(end - timedelta(days=days - 1), datetime.min.time(), UTC)
        with self.reading() as db:
            rows = db.execute(
                f"SELECT queue, count(*), {_count('outcome', 'completed')}, "
                f"{_count('abandoned', 'queue')}, {_count('outcome', 'no_agent')}, "
                f"{_count('status', 'unrecorded')}, avg(queue_wait_s) FROM calls "
                "WHERE entered_at >= ? GROUP BY queue ORDER BY queue = '', queue",
                (to_ms(since),)).fetchall()
        return [QueueCounts(*row) for row in rows]

    def daily(self, days: int, today: date | None = None) -> list[DayCounts]:
        end = today or datetime.now(UTC).date()
        start = end - timedelta(days=days - 1)
        out = {(start + timedelta(d)).isoformat(): {"recorded": 0, "unrecorded": 0,
                                                     "interrupted": 0, "notice_failed": 0}
               for d in range(days)}
        with self.reading() as db:
            rows = db.execute("SELECT day, status, calls, notice_failed FROM daily "
                              "WHERE day >= ? AND day <= ?",
                              (start.isoformat(), end.isoformat())).fetchall()
        for day, status, calls, failed in rows:
            if day in out and status in out[day]:
                out[day][status] += calls
                out[day]["notice_failed"] += failed
        return [DayCounts(day, **counts) for day, counts in out.items()]

    def callers_with(self, outcome: str, since: datetime, at_least: int,
                     number: str | None = None) -> list[str]:
        with self.reading() as db:
            rows = db.execute(
                "SELECT caller_e164 FROM calls WHERE outcome = ? AND entered_at >= ? "
                "AND caller_e164 != '' AND (CAST(? AS TEXT) IS NULL OR caller_e164 = ?) "
                "GROUP BY caller_e164 HAVING count(*) >= ?",
                (outcome, to_ms(since), number, number, at_least)).fetchall()
        return [str(n) for (n,) in rows]

    # -- audit -----------------------------------------------------------------------------------
    def audit(self, actor: str, role: str, via: str, action: str, call_id: str | None,
              detail: dict[str, Any], address: str = "") -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO audit (at, actor, role, via, action, call_id, detail, address) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (datetime.now(UTC).isoformat(timespec="milliseconds"), actor, role, via, action,
                 call_id, json.dumps(detail, ensure_ascii=False, default=str), address))
            return int(cur.fetchone()[0])

    def audit_rows(self, after_id: int = 0, limit: int = 200,
                   newest_first: bool = False) -> list[AuditRow]:
        order = "DESC" if newest_first else "ASC"
        with self.reading() as db:
            rows = db.execute(f"SELECT {AUDIT_COLUMNS} FROM audit WHERE id > ? "
                              f"ORDER BY id {order} LIMIT ?", (after_id, limit)).fetchall()
        return [AuditRow(*row) for row in rows]

    def audit_page(self, f: AuditFilter) -> list[AuditRow]:
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
        with self.reading() as db:
            rows = db.execute(f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {' AND '.join(where)} "
                              "ORDER BY id DESC LIMIT ?", (*args, f.limit)).fetchall()
        return [AuditRow(*row) for row in rows]

    # -- bookkeeping -----------------------------------------------------------------------------
    def get_state(self, name: str, default: str = "") -> str:
        with self.reading() as db:
            row = db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else default

    def set_state(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO state VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                       "SET value = excluded.value", (name, value))

    def change_applied(self, key: str) -> bool:
        with self.reading() as db:
            return db.execute("SELECT 1 FROM applied_changes WHERE key = ?",
                              (key,)).fetchone() is not None

    def mark_change_applied(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO applied_changes VALUES (?) ON CONFLICT DO NOTHING",
                       (key,))

    # -- web sessions ----------------------------------------------------------------------------
    def session_add(self, row: SessionRow, expired_before: float,
                    idle_before: float) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE started < ? OR last_seen < ?",
                       (expired_before, idle_before))  # ended ones go as new ones begin
            db.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?, ?)",
                       (row.key, row.user, row.role, row.csrf, row.started, row.last_seen))

    def session_get(self, key: str) -> SessionRow | None:
        with self.reading() as db:  # a read: no write transaction for every page view
            row = db.execute(
                'SELECT id_sha256, "user", role, csrf, started, last_seen, (SELECT lang FROM '
                'web_languages l WHERE l."user" = s."user") FROM web_sessions s '
                "WHERE id_sha256 = ?", (key,)).fetchone()
        return SessionRow(*row) if row else None

    def session_touch(self, key: str, now: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE web_sessions SET last_seen = ? WHERE id_sha256 = ?", (now, key))

    def session_drop(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (key,))

    def set_language(self, user: str, lang: str) -> None:
        with self.transaction() as db:
            db.execute('INSERT INTO web_languages VALUES (?, ?) ON CONFLICT ("user") DO UPDATE '
                       "SET lang = excluded.lang", (user, lang))


def _values(row: CallRow) -> list[Any]:
    """A call row as the columns store it: times in ms, lists as JSON, booleans as 0/1."""
    out: list[Any] = []
    for name, value in row.fields().items():
        if name == "entered_at":
            value = to_ms(value)
        elif name == "agents":
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        out.append(value)
    return out


def _call_row(row: tuple[Any, ...]) -> CallRow:
    values = dict(zip(COLUMNS, row, strict=True))
    values["entered_at"] = from_ms(values["entered_at"])
    values["agents"] = json.loads(values["agents"])
    for name in ("notice_completed", "notice_failed", "legal_hold"):
        values[name] = bool(values[name])
    return CallRow(**values)
