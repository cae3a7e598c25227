"""The SQLite catalog's schema (archive/catalog/sqlite.py), and the columns added since the first
catalog (``ALTER TABLE`` on open; ``sync --rebuild`` fills them)."""

from __future__ import annotations

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
    reviewed TEXT NOT NULL DEFAULT '',    -- "<who> <when>" a supervisor reviewed the flags
    audio TEXT NOT NULL DEFAULT ''        -- the audio check's verdict; '' = not checked
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
-- web sessions (archive/sessions.py): the SHA-256 of the cookie, never the cookie
CREATE TABLE IF NOT EXISTS web_sessions (
    id_sha256 TEXT PRIMARY KEY, "user" TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL,
    started REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS web_languages ("user" TEXT PRIMARY KEY, lang TEXT NOT NULL);
"""

ADDED = {"agent_name": "TEXT NOT NULL DEFAULT ''", "queue": "TEXT NOT NULL DEFAULT ''",
         "queue_wait_s": "REAL", "abandoned": "TEXT NOT NULL DEFAULT ''",
         "flags": "TEXT NOT NULL DEFAULT ''", "reviewed": "TEXT NOT NULL DEFAULT ''",
         "audio": "TEXT NOT NULL DEFAULT ''"}
