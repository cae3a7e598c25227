"""What a catalog row is: the SQLite schema, its columns, and the row made from a manifest.

The catalog (archive/catalog.py) keeps these rows; they can always be made again from the
manifests in the bucket (``callrec archive sync --rebuild``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from archive.flags import FlagSettings, joined, manifest_flags
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
ADDED = {"agent_name": "TEXT NOT NULL DEFAULT ''", "queue": "TEXT NOT NULL DEFAULT ''",
          "queue_wait_s": "REAL", "abandoned": "TEXT NOT NULL DEFAULT ''",
          "flags": "TEXT NOT NULL DEFAULT ''", "reviewed": "TEXT NOT NULL DEFAULT ''"}
_FLAGS, REVIEWED = COLUMNS.index("flags"), COLUMNS.index("reviewed")
UPSERT = (f"INSERT OR REPLACE INTO calls ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(COLUMNS))})")


def to_ms(at: datetime) -> int:
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
    return (m.call_id, to_ms(m.entered_at), f"{m.entered_at.astimezone(UTC):%Y-%m-%d}", caller,
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
