"""The catalog on a PostgreSQL server (``archive.database``), for several archive servers that
share one catalog: logins, audit order, reviews and holds are the same on all of them at once.

psycopg 3 with a connection pool (psycopg_pool): each read or write borrows one connection for
one transaction. The queries are sql.py's, shared with SQLite; the schema is pg_schema.py's
numbered migrations, applied by ``callrec archive migrate`` under an advisory lock, so two
servers migrating at once apply each migration once. A server refuses to start on a schema
older than it knows (the message says to migrate) or newer (a newer release migrated it).
Every driver error becomes a CatalogError naming the server and database, never the password.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from archive.catalog import CatalogError
from archive.catalog.pg_schema import LATEST, MIGRATIONS
from archive.catalog.sql import Cursor, Db, SqlCatalog
from archive.config import FlagSettings
from callrec.numbering import NumberingPlan

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x63616C6C72656301  # pg_advisory_xact_lock's key: "callrec" + 1


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """sql.py's ``?`` as psycopg's ``%s`` (its SQL has no ``?`` or ``%`` of its own)."""
    return sql.replace("?", "%s")


class _Connection:
    """A pooled psycopg connection as sql.py's ``Db``."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Any = None, /) -> Cursor:
        return self.conn.execute(_placeholders(sql), args)

    def executemany(self, sql: str, args: Any, /) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_placeholders(sql), list(args))


def describe(dsn: str) -> str:
    """``user@host:port/dbname`` of a connection string, for messages (never its password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql (an unreadable connection string)"
    return (f"postgresql://{parts.get('user', '')}@{parts.get('host', '')}:"
            f"{parts.get('port', '5432')}/{parts.get('dbname', '')}")


class PostgresCatalog(SqlCatalog):
    def __init__(self, dsn: str, plan: NumberingPlan, flags: FlagSettings | None = None,
                 pool_size: int = 8, connect_timeout_s: float = 10.0) -> None:
        self.plan, self.flags, self.where = plan, flags or FlagSettings(), describe(dsn)
        try:
            self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=False,
                                       name="callrec-catalog", timeout=connect_timeout_s)
            self.pool.open(wait=True, timeout=connect_timeout_s)
        except (PoolTimeout, psycopg.Error) as exc:
            raise CatalogError(f"catalog {self.where}: cannot connect ({_why(exc)})") from exc

    def close(self) -> None:
        self.pool.close()

    def check_schema(self) -> None:
        """Refuse a database this release cannot work with (before any other query)."""
        version = self.schema_version()
        if version < LATEST:
            raise CatalogError(f"catalog {self.where}: schema version {version}, this release "
                               f"needs {LATEST}: run `callrec archive migrate`")
        if version > LATEST:
            raise CatalogError(f"catalog {self.where}: schema version {version} is newer than "
                               f"this release's {LATEST} (upgrade callrec on this server)")

    def schema_version(self) -> int:
        with self.reading() as db:
            exists = db.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
            if exists is None:
                return 0
            return int(db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations"
                                  ).fetchone()[0])

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in one transaction; the versions
        applied (none if another server got there first)."""
        applied: list[int] = []
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                       "KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            have = {int(v) for (v,) in db.execute("SELECT version FROM schema_migrations"
                                                  ).fetchall()}
            for version, statements in MIGRATIONS:
                if version in have:
                    continue
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))
                applied.append(version)
        for version in applied:
            log.info("catalog %s: migration %d applied", self.where, version)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield _Connection(conn)
        except (PoolTimeout, psycopg.Error) as exc:
            raise CatalogError(f"catalog {self.where}: {_why(exc)}") from exc

    reading = transaction  # a read is a (short) transaction of its own, on its own connection

    def _lock_call(self, db: Db, call_id: str) -> None:
        # Two servers catalogue one call at once (both sync the bucket): one waits for the
        # other's delete-and-insert instead of failing on the primary key.
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (call_id,))


def _why(exc: BaseException) -> str:
    """The driver's message without a connection string (psycopg's never holds the
    password, but a misquoted DSN could end up in a parse error)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if "password=" not in text else type(exc).__name__
