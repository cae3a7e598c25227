"""What only a shared catalog server has to get right: migrations two servers run at once, a
schema refused until migrated, two archive processes seeing each other's writes at once, the
copy of a SQLite catalog, and errors that never show the password. (The catalog's behaviour
itself is tested on both backends: tests/archive/test_catalog.py, test_flags.py.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.catalog import CatalogError, Query, SessionRow
from archive.catalog.backends import open_catalog
from archive.catalog.pg_schema import LATEST
from archive.catalog.postgres import PostgresCatalog
from archive.catalog.rows import row_for
from archive.catalog.sqlite import SQLiteCatalog
from archive.config import CatalogSettings, FlagSettings
from callrec.manifest import AgentLeg, CallManifest, Notice, Party, Policy, RecordingStatus
from callrec.numbering import NumberingPlan
from callrec_cli.main import main
from testbench.postgres import Postgres

PLAN = NumberingPlan()


def manifest(n: int, caller: str = "0312345678") -> CallManifest:
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC) + timedelta(seconds=n)
    return CallManifest(
        call_id=f"20261120T090000Z-{n:012x}", asterisk_uniqueid="1.1", policy=Policy.FORCE,
        status=RecordingStatus.RECORDED, outcome="completed", entered_at=at,
        ended_at=at + timedelta(seconds=30), caller=Party(number_raw=caller, number=caller),
        agents=[AgentLeg(endpoint=f"agent-{n % 7}", channel="PJSIP/a-1", dial_status="ANSWER")],
        notice=Notice(played=True, completed=True))


def two(dsn: str) -> tuple[PostgresCatalog, PostgresCatalog]:
    first = PostgresCatalog(dsn, PLAN)
    first.migrate()
    return first, PostgresCatalog(dsn, PLAN)


def test_migrations_run_once_when_two_servers_migrate_at_once(postgres: Postgres) -> None:
    dsn = postgres.database()
    catalogs = [PostgresCatalog(dsn, PLAN) for _ in range(2)]
    start = threading.Barrier(2)

    def migrate(catalog: PostgresCatalog) -> list[int]:
        start.wait()
        return catalog.migrate()

    with ThreadPoolExecutor(2) as pool:
        applied = sorted(pool.map(migrate, catalogs), key=len)
    assert applied == [[], list(range(1, LATEST + 1))]
    assert all(c.schema_version() == LATEST for c in catalogs)
    for catalog in catalogs:
        catalog.close()


def test_an_unmigrated_database_is_refused_with_what_to_do(postgres: Postgres) -> None:
    settings = CatalogSettings(database=postgres.database())
    with pytest.raises(CatalogError, match="run `callrec archive migrate`"):
        open_catalog(settings, PLAN, FlagSettings())


def test_two_archive_processes_share_sessions_holds_and_audit_at_once(
        postgres: Postgres) -> None:
    a, b = two(postgres.database())
    try:
        a.add(manifest(1), "k1.json", "e1", False)
        now = datetime.now(UTC).timestamp()
        a.session_add(SessionRow("s" * 64, "sato", "supervisor", "csrf", now, now, None), 0, 0)
        found = b.session_get("s" * 64)
        assert found is not None and found.user == "sato"  # logged in on a, known on b
        assert b.set_legal_hold(manifest(1).call_id, True)
        row = a.get(manifest(1).call_id)
        assert row is not None and row.legal_hold  # held on b, held on a
        ids = [(a if n % 2 else b).audit("ops", "admin", "web", "view", None, {"n": n})
               for n in range(6)]
        assert ids == sorted(ids) and len(set(ids)) == 6
        assert [r.detail for r in a.audit_rows()] == [f'{{"n": {n}}}' for n in range(6)]
    finally:
        a.close()
        b.close()


def test_two_servers_cataloguing_one_call_at_once_leave_one_row(postgres: Postgres) -> None:
    a, b = two(postgres.database())
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda c: [c.add(manifest(n), f"k{n}.json", "e", False)
                                     for n in range(50)], (a, b)))
        assert a.count() == 50
        [day] = [d for d in a.daily(1, today=datetime(2026, 11, 20).date())]
        assert day.recorded == 50  # the day counts too, not 100
        assert len(b.search(Query(agent="agent-3"))) == len(range(3, 50, 7))
    finally:
        a.close()
        b.close()


def test_migrate_from_sqlite_keeps_every_row(postgres: Postgres, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = SQLiteCatalog(tmp_path / "old.sqlite3", PLAN)
    source.upsert(row_for(
        manifest(n, caller=f"03{n % 97:08d}"), f"k{n}.json", f"e{n}", PLAN, n % 50 == 0)
        for n in range(10_000))
    for n in range(300):
        source.audit(f"user{n % 3}", "supervisor", "web", "play", manifest(n).call_id, {"n": n})
    source.set_state("audit_shipped", "120")
    source.close()
    dsn = postgres.database()
    monkeypatch.setenv("CALLREC_ARCHIVE__DATABASE", dsn)
    assert main(["archive", "migrate", "--from-sqlite", str(tmp_path / "old.sqlite3")]) == 0
    out = capsys.readouterr().out
    assert "calls 10000" in out and "audit 300" in out and "audit log SHA-256" in out
    copied = PostgresCatalog(dsn, PLAN)
    try:
        copied.check_schema()
        assert copied.count() == 10_000 and copied.get_state("audit_shipped") == "120"
        assert len(copied.search(Query(legal_hold=True, limit=1000))) == 200
        assert copied.audit("ops", "admin", "cli", "view", None, {}) == 301  # ids go on
        old = SQLiteCatalog(tmp_path / "old.sqlite3", PLAN)
        q = Query(caller_prefix="03000000", limit=1000)
        assert [r.call_id for r in copied.search(q)] == [r.call_id for r in old.search(q)]
        assert copied.daily(1, today=datetime(2026, 11, 20).date()) == \
            old.daily(1, today=datetime(2026, 11, 20).date())
        old.close()
    finally:
        copied.close()
    # Into a database that is not empty: refused, nothing added.
    assert main(["archive", "migrate", "--from-sqlite", str(tmp_path / "old.sqlite3")]) == 1
    assert "not empty" in capsys.readouterr().err


def test_a_wrong_password_is_a_clear_error_without_the_password(postgres: Postgres) -> None:
    dsn = postgres.database().replace(postgres.password, "not-the-password-x7")
    with pytest.raises(CatalogError) as refused:
        PostgresCatalog(dsn, PLAN, connect_timeout_s=3)
    assert "cannot connect" in str(refused.value)
    assert "not-the-password-x7" not in str(refused.value)
    assert postgres.password not in str(refused.value)
