"""The uploader's journal (SQLite): where each call's shipping stands, across restarts.

S3 stays the judge of what is archived (an object counts only when HEAD shows our size and
SHA-256); the journal records what the uploader did and saw, so that a restart knows which calls
were mid-upload (and logs it), the metrics know attempts, failures and ages, and an operator can
ask ``sqlite3 <spool>/.uploader.sqlite3 'select * from calls where state != "done"'``.

States: ``pending`` (manifest seen) -> ``uploading`` -> ``done`` (verified, local files removed or
moved); ``failed`` (S3 error, retried with backoff); ``quarantined``. Rows of done calls are pruned
after ``keep_done_days``. WAL mode: one writer thread at a time, readers never block it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from enum import StrEnum
from pathlib import Path

from uploader import UploaderError

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id     TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    first_seen  REAL NOT NULL,
    updated     REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER NOT NULL DEFAULT 0,
    key         TEXT,
    last_error  TEXT
);
CREATE INDEX IF NOT EXISTS calls_state ON calls (state, updated);
"""


class State(StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    QUARANTINED = "quarantined"


class UploadJournalError(UploaderError):
    """The journal cannot be written (full disk, read-only spool, corrupt file). Shipping goes on
    without it: S3 verification, not the journal, decides when a local file may go - and on a
    full disk, shipping is what frees space."""


class UploadJournal:
    def __init__(self, path: Path, keep_done_days: float = 7.0) -> None:
        self.path = path
        self.keep_done_s = keep_done_days * 86400
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None  # opened on first use, again after a failure
        # Only a journal that existed before this run can say "never attempted": a new (or
        # deleted) one knows nothing of what earlier runs may have uploaded.
        self.inherited = path.exists()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                if self._db is None:
                    self._db = self._connect()
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise UploadJournalError(f"uploader journal {self.path}: {exc}") from exc

    def start(self, call_id: str, size: int, key: str) -> State | None:
        """An attempt begins; returns the state the previous attempt left (None: none known)."""
        now = time.time()
        found = self._run("SELECT state FROM calls WHERE call_id = ?", (call_id,))
        self._run(
            "INSERT INTO calls (call_id, state, first_seen, updated, attempts, bytes, key) "
            "VALUES (?, 'uploading', ?, ?, 1, ?, ?) ON CONFLICT (call_id) DO UPDATE SET "
            "state = 'uploading', updated = excluded.updated, attempts = attempts + 1, "
            "bytes = excluded.bytes, key = excluded.key",
            (call_id, now, now, size, key))
        return State(str(found[0][0])) if found else None

    def mark(self, call_id: str, state: State, error: str | None = None) -> None:
        now = time.time()
        self._run(
            "INSERT INTO calls (call_id, state, first_seen, updated, last_error) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE SET state = excluded.state, "
            "updated = excluded.updated, last_error = excluded.last_error",
            (call_id, state.value, now, now, error))

    def attempts(self, call_id: str) -> int:
        found = self._run("SELECT attempts FROM calls WHERE call_id = ?", (call_id,))
        return int(str(found[0][0])) if found else 0

    def states(self) -> dict[str, int]:
        return {str(s): int(str(n)) for s, n in
                self._run("SELECT state, count(*) FROM calls GROUP BY state")}

    def interrupted(self) -> list[str]:
        """Calls an earlier run left mid-upload (killed)."""
        return [str(r[0]) for r in
                self._run("SELECT call_id FROM calls WHERE state = 'uploading'")]

    def prune(self) -> int:
        cutoff = time.time() - self.keep_done_s
        rows = self._run("DELETE FROM calls WHERE state = 'done' AND updated < ? RETURNING 1",
                         (cutoff,))
        return len(rows)
