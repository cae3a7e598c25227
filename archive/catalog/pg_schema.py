"""The PostgreSQL catalog's schema as numbered migrations (archive/catalog/postgres.py applies
them; ``callrec archive migrate`` is the command). The same tables and columns as SQLite's
(schema.py), in PostgreSQL's words: identity ids, plpgsql triggers for the day counts and the
append-only audit log, ``COLLATE "C"`` where a prefix search compares text by code point.

A migration is a list of statements (plpgsql bodies hold semicolons: no splitting of a script).
Never edit one that shipped: add the next number.
"""

from __future__ import annotations

import re

from archive.catalog.schema import SCHEMA

_TYPES = {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION"}


def _calls_table() -> str:
    """The calls table of SQLite's first schema (schema.py: its one definition, frozen like a
    migration; later columns come as ADDED there and as a migration here), in PostgreSQL's
    types; caller_e164 compares by code point (the prefix search's range)."""
    body = SCHEMA.split("CREATE TABLE IF NOT EXISTS calls (", 1)[1].split(") WITHOUT ROWID;")[0]
    columns = [line.split("--")[0].strip().rstrip(",") for line in body.splitlines()]
    typed = [re.sub(r"\b(INTEGER|REAL)\b", lambda m: _TYPES[m.group(1)], c)
             for c in columns if c]
    typed = [c.replace("caller_e164 TEXT", 'caller_e164 TEXT COLLATE "C"') for c in typed]
    return "CREATE TABLE calls (\n    " + ",\n    ".join(typed) + ")"


V1 = [
    _calls_table(),
    "CREATE INDEX calls_time ON calls (entered_at)",
    "CREATE INDEX calls_caller ON calls (caller_e164, entered_at)",
    "CREATE INDEX calls_outcome ON calls (outcome, entered_at)",
    "CREATE INDEX calls_did ON calls (did, entered_at)",
    "CREATE INDEX calls_queue ON calls (queue, entered_at)",
    "CREATE INDEX calls_hold ON calls (legal_hold, entered_at) WHERE legal_hold = 1",
    "CREATE INDEX calls_flagged ON calls (entered_at) WHERE flags != '' AND reviewed = ''",
    "CREATE INDEX calls_key ON calls (manifest_key, etag)",
    """CREATE TABLE call_agents (
        agent TEXT NOT NULL, entered_at BIGINT NOT NULL, call_id TEXT NOT NULL,
        PRIMARY KEY (agent, entered_at, call_id))""",
    "CREATE INDEX call_agents_call ON call_agents (call_id)",
    """CREATE TABLE daily (
        day TEXT NOT NULL, status TEXT NOT NULL, calls BIGINT NOT NULL,
        notice_failed BIGINT NOT NULL, PRIMARY KEY (day, status))""",
    """CREATE FUNCTION callrec_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO daily VALUES (NEW.day, NEW.status, 1, NEW.notice_failed)
        ON CONFLICT (day, status) DO UPDATE SET calls = daily.calls + 1,
            notice_failed = daily.notice_failed + EXCLUDED.notice_failed;
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION callrec_daily_remove() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE daily SET calls = calls - 1, notice_failed = notice_failed - OLD.notice_failed
        WHERE day = OLD.day AND status = OLD.status;
        RETURN OLD;
    END $$""",
    "CREATE TRIGGER daily_add AFTER INSERT ON calls FOR EACH ROW "
    "EXECUTE FUNCTION callrec_daily_add()",
    "CREATE TRIGGER daily_remove AFTER DELETE ON calls FOR EACH ROW "
    "EXECUTE FUNCTION callrec_daily_remove()",
    """CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL, via TEXT NOT NULL,
        action TEXT NOT NULL, call_id TEXT, detail TEXT NOT NULL, address TEXT NOT NULL)""",
    "CREATE INDEX audit_call ON audit (call_id, id)",
    """CREATE FUNCTION callrec_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only';
    END $$""",
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit FOR EACH ROW "
    "EXECUTE FUNCTION callrec_audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT "
    "EXECUTE FUNCTION callrec_audit_append_only()",
    "CREATE TABLE state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE applied_changes (key TEXT PRIMARY KEY)",
    """CREATE TABLE web_sessions (
        id_sha256 TEXT PRIMARY KEY, "user" TEXT NOT NULL, role TEXT NOT NULL,
        csrf TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL)""",
    'CREATE TABLE web_languages ("user" TEXT PRIMARY KEY, lang TEXT NOT NULL)',
]

MIGRATIONS: list[tuple[int, list[str]]] = [(1, V1)]
LATEST = MIGRATIONS[-1][0]
