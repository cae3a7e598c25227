"""Which catalog an archive process opens: PostgreSQL when ``archive.database`` names one
(checked to be at this release's schema), else the SQLite file ``archive.catalog``."""

from __future__ import annotations

from pathlib import Path

from archive.catalog import CatalogError
from archive.catalog.copy import copy_sqlite
from archive.catalog.postgres import PostgresCatalog
from archive.catalog.sql import SqlCatalog
from archive.catalog.sqlite import SQLiteCatalog
from archive.config import CatalogSettings, FlagSettings
from callrec.numbering import NumberingPlan


def open_catalog(settings: CatalogSettings, plan: NumberingPlan, flags: FlagSettings,
                 sqlite_path: Path | None = None) -> SqlCatalog:
    """``sqlite_path`` overrides ``settings.catalog`` (the uploader's own catalog file)."""
    dsn = settings.database.get_secret_value()
    if not dsn:
        return SQLiteCatalog(sqlite_path or settings.catalog, plan, flags)
    catalog = PostgresCatalog(dsn, plan, flags, settings.pool_size)
    try:
        catalog.check_schema()
    except BaseException:
        catalog.close()
        raise
    return catalog


def migrate(settings: CatalogSettings, plan: NumberingPlan, flags: FlagSettings,
            from_sqlite: Path | None = None) -> str:
    """``callrec archive migrate``: what it did, in a line or two."""
    dsn = settings.database.get_secret_value()
    if not dsn:
        if from_sqlite is not None:
            raise CatalogError("--from-sqlite needs archive.database (the PostgreSQL target)")
        SQLiteCatalog(settings.catalog, plan, flags).close()  # it migrates itself on opening
        return f"catalog {settings.catalog} (SQLite): up to date"
    catalog = PostgresCatalog(dsn, plan, flags, 2)
    try:
        applied = catalog.migrate()
        done = f"catalog {catalog.where}: " + (
            f"migrations {', '.join(map(str, applied))} applied" if applied else "up to date")
        if from_sqlite is not None:
            copied = copy_sqlite(from_sqlite, catalog)
            done += (f"\ncopied from {from_sqlite}: " + ", ".join(
                f"{table} {n}" for table, n in copied.rows.items())
                + f"; audit log SHA-256 {copied.audit_sha256} on both")
        return done
    finally:
        catalog.close()
