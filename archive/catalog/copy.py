"""``callrec archive migrate --from-sqlite FILE``: an existing SQLite catalog into an empty
PostgreSQL one, every row, checked after.

Rows are copied as they are stored (calls, their agents, the audit log with its ids, sync state,
applied changes, sessions, languages); the day counts are made again by the target's triggers
as the calls arrive. The copy is one transaction on the target: a failure leaves it empty. It is
checked after by the row count of each table and by a SHA-256 over the whole audit log in id
order (the log is evidence: a row lost, changed or reordered shows).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from archive.catalog import CatalogError
from archive.catalog.postgres import PostgresCatalog
from archive.catalog.sql import AUDIT_COLUMNS, Db

TABLES = {  # table -> its columns, in the order both schemas have them
    "calls": None, "call_agents": "agent, entered_at, call_id", "audit": AUDIT_COLUMNS,
    "state": "name, value", "applied_changes": "key",
    "web_sessions": 'id_sha256, "user", role, csrf, started, last_seen',
    "web_languages": '"user", lang',
}
BATCH = 2000


@dataclass(frozen=True)
class Copied:
    rows: dict[str, int]
    audit_sha256: str


def copy_sqlite(source: Path, target: PostgresCatalog) -> Copied:
    if not source.is_file():
        raise CatalogError(f"no SQLite catalog at {source}")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise CatalogError(f"{source}: {exc}") from exc
    try:
        with target.transaction() as db:
            if db.execute("SELECT count(*) FROM calls").fetchone()[0] or \
                    db.execute("SELECT count(*) FROM audit").fetchone()[0]:
                raise CatalogError(f"catalog {target.where} is not empty: the copy goes into "
                                   "a new database only")
            rows = {table: _copy(src, db, table, columns) for table, columns in TABLES.items()}
            # The audit ids were copied: the identity goes on after the last one.
            db.execute("SELECT setval(pg_get_serial_sequence('audit', 'id'), "
                       "greatest((SELECT max(id) FROM audit), 1))")
        digest = _audit_digest(src.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"))
    except sqlite3.Error as exc:
        raise CatalogError(f"{source}: {exc}") from exc
    finally:
        src.close()
    _check(target, rows, digest)
    return Copied(rows, digest)


def _copy(src: sqlite3.Connection, db: Db, table: str, columns: str | None) -> int:
    if columns is None:
        columns = ", ".join(r[1] for r in src.execute(f"PRAGMA table_info({table})"))
    cursor = src.execute(f"SELECT {columns} FROM {table}")
    width = len(columns.split(","))
    overriding = " OVERRIDING SYSTEM VALUE" if table == "audit" else ""
    insert = (f"INSERT INTO {table} ({columns}){overriding} "
              f"VALUES ({', '.join('?' * width)})")
    count = 0
    while batch := cursor.fetchmany(BATCH):
        db.executemany(insert, batch)
        count += len(batch)
    return count


def _audit_digest(rows: Iterable[Sequence[object]]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _check(target: PostgresCatalog, rows: dict[str, int], digest: str) -> None:
    with target.reading() as db:
        for table, count in rows.items():
            there = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            if there != count:
                raise CatalogError(f"copy check: {table} has {there} rows, the source {count}")
        copied = _audit_digest(db.execute(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"
                                          ).fetchall())
    if copied != digest:
        raise CatalogError("copy check: the audit log differs from the source's")
