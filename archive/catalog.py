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
from archive.flags import FlagSettings, joined, manifest_flags, mark_repeats
from callrec.manifest import CallManifest, normalise_number
from callrec.numbering import NumberingPlan

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    entered_at INTEGER NOT NULL,          -- ms since the epoch, UTC
    day TEXT NOT NULL,                    -- YYYY-MM-DD (UTC), for the dashboard
    caller TEXT NOT NULL,                 -- normalised digits
    caller_e164 TEXT NOT NULL,
    caller_raw TEXT NOT NULL,             -- untrusted: render as text only
    caller_name TEXT NOT NULL,            -- untrusted: render as text only
    agent TEXT NOT NULL,                  -- the agent who answered (else the first tried)
    agents TEXT NOT NULL,                 -- JSON list, in order
    did TEXT NOT NULL,
    direction TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    notice_completed INTEGER NOT NULL,
    notice_failed INTEGER NOT NULL,       -- the policy wanted a notice the caller did not hear
    duration_s REAL NOT NULL,
    legal_hold INTEGER NOT NULL,
    manifest_key TEXT NOT NULL,
    recording_key TEXT,
    sha256 TEXT,
    size INTEGER,
    etag TEXT NOT NULL,
    agent_name TEXT NOT NULL DEFAULT '',  -- the answering agent's display name
    queue TEXT NOT NULL DEFAULT '',       -- the queue that answered, else the last one entered
    queue_wait_s REAL,                    -- the caller's wait in that queue
    abandoned TEXT NOT NULL DEFAULT '',   -- where the caller gave up (notice, queue, parked...)
    flags TEXT NOT NULL DEFAULT '',       -- for review (archive/flags.py), comma-separated
    reviewed TEXT NOT NULL DEFAULT ''     -- "<who> <when>" a supervisor reviewed the flags
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_time ON calls (entered_at);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller_e164, entered_at);
CREATE INDEX IF NOT EXISTS calls_outcome ON calls (outcome, entered_at);
CREATE INDEX IF NOT EXISTS calls_did ON calls (did, entered_at);
CREATE INDEX IF NOT EXISTS calls_hold ON calls (legal_hold, entered_at) WHERE legal_hold;
-- sync compares each listed key's ETag: without this, every batch of keys scans every call
CREATE INDEX IF NOT EXISTS calls_key ON calls (manifest_key, etag);
-- call_agents holds every agent's id and display name (searched either way), lower-cased
CREATE TABLE IF NOT EXISTS call_agents (
    agent TEXT NOT NULL, entered_at INTEGER NOT NULL, call_id TEXT NOT NULL,
    PRIMARY KEY (agent, entered_at, call_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
    day TEXT NOT NULL, status TEXT NOT NULL, calls INTEGER NOT NULL,
    notice_failed INTEGER NOT NULL, PRIMARY KEY (day, status)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS daily_add AFTER INSERT ON calls BEGIN
    INSERT INTO daily VALUES (new.day, new.status, 1, new.notice_failed)
    ON CONFLICT (day, status) DO UPDATE SET calls = calls + 1,
        notice_failed = notice_failed + new.notice_failed;
END;
CREATE TRIGGER IF NOT EXISTS daily_remove AFTER DELETE ON calls BEGIN
    UPDATE daily SET calls = calls - 1, notice_failed = notice_failed - old.notice_failed
    WHERE day = old.day AND status = old.status;
END;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, via TEXT NOT NULL,
    action TEXT NOT NULL, call_id TEXT, detail TEXT NOT NULL, address TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- (calls_queue is created after the columns of older catalogs are added: Catalog._migrate)
CREATE TABLE IF NOT EXISTS applied_changes (key TEXT PRIMARY KEY) WITHOUT ROWID;
"""

COLUMNS = ("call_id", "entered_at", "day", "caller", "caller_e164", "caller_raw", "caller_name",
           "agent", "agents", "did", "direction", "outcome", "status", "status_reason",
           "notice_completed", "notice_failed", "duration_s", "legal_hold", "manifest_key",
           "recording_key", "sha256", "size", "etag", "agent_name", "queue", "queue_wait_s",
           "abandoned", "flags", "reviewed")
# Columns added since the first catalog (ALTER TABLE on open; ``sync --rebuild`` fills them).
_ADDED = {"agent_name": "TEXT NOT NULL DEFAULT ''", "queue": "TEXT NOT NULL DEFAULT ''",
          "queue_wait_s": "REAL", "abandoned": "TEXT NOT NULL DEFAULT ''",
          "flags": "TEXT NOT NULL DEFAULT ''", "reviewed": "TEXT NOT NULL DEFAULT ''"}
_FLAGS, _REVIEWED = COLUMNS.index("flags"), COLUMNS.index("reviewed")
_UPSERT = (f"INSERT OR REPLACE INTO calls ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(COLUMNS))})")


class CatalogError(ArchiveError):
    pass


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def row_for(m: CallManifest, manifest_key: str, etag: str, plan: NumberingPlan,
            legal_hold: bool, flags: FlagSettings | None = None) -> tuple[Any, ...]:
    caller = m.caller.number or normalise_number(m.caller.number_raw)
    ended = m.ended_at or m.entered_at
    queue = m.queue()
    visit = next((v for v in reversed(m.queues) if v.queue == queue), None)
    recorded = m.recording is not None and m.status.value != "unrecorded"
    wanted_notice = m.policy.value != "never"
    return (m.call_id, _ms(m.entered_at), f"{m.entered_at.astimezone(UTC):%Y-%m-%d}", caller,
            plan.e164(caller), m.caller.number_raw, m.caller.name_raw, m.agent(),
            json.dumps([a.agent_id or a.endpoint for a in m.agents]), m.did or "",
            m.direction.value,
            m.outcome, m.status.value, m.status_reason or "", int(m.notice.completed),
            int(wanted_notice and not m.notice.completed),
            max(0.0, (ended - m.entered_at).total_seconds()), int(legal_hold), manifest_key,
            manifest_key.removesuffix(".json") + ".wav" if recorded else None,
            m.recording.sha256 if m.recording else None,
            m.recording.size if m.recording else None, etag, m.agent_name(), queue,
            visit.wait_s if visit else None, m.abandoned.where.value if m.abandoned else "",
            joined(manifest_flags(m, flags or FlagSettings())), "")


_AGENTS, _AGENT_NAME = COLUMNS.index("agents"), COLUMNS.index("agent_name")


def agent_keys(row: tuple[Any, ...]) -> list[str]:
    """What the agent search finds a call by, case-insensitively: every agent's id, and the
    answering agent's display name."""
    keys = [*json.loads(row[_AGENTS]), *(row[_AGENT_NAME:_AGENT_NAME + 1] or [""])]
    return list(dict.fromkeys(k.strip().casefold() for k in keys if k))


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
        for column, kind in _ADDED.items():
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
                if before and before[0] and not row[_REVIEWED]:
                    row = (*row[:_REVIEWED], before[0], *row[_REVIEWED + 1:])
                db.execute("DELETE FROM calls WHERE call_id = ?", (row[0],))  # keeps daily right
                db.execute("DELETE FROM call_agents WHERE call_id = ?", (row[0],))
                db.execute(_UPSERT, row)
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
            (q.since is not None, "calls.entered_at >= ?", (q.since and _ms(q.since),)),
            (q.until is not None, "calls.entered_at < ?", (q.until and _ms(q.until),)),
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
                (_ms(since),)).fetchall()
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
