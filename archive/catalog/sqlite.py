"""The catalog in SQLite (archive/catalog/__init__.py says what a catalog does): one file per
archive server, WAL, every write in one ``BEGIN IMMEDIATE`` transaction, reads under a lock (one
connection shared by the web server's threads). The queries are sql.py's, shared with
PostgreSQL; the schema is schema.py's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archive.catalog import CatalogError
from archive.catalog.schema import ADDED, SCHEMA
from archive.catalog.sql import Db, SqlCatalog
from archive.config import FlagSettings
from callrec.numbering import NumberingPlan


class SQLiteCatalog(SqlCatalog):
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
    def transaction(self) -> Iterator[Db]:
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

    @contextmanager
    def reading(self) -> Iterator[Db]:
        with self.lock:
            try:
                yield self.db
            except sqlite3.Error as exc:
                raise CatalogError(f"catalog {self.path}: {exc}") from exc

