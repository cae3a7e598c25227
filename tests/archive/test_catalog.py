"""The catalog on its own (no S3): numbering plan, search plans, dashboard counts, audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.catalog import CatalogError, DayCounts, Query
from archive.catalog.rows import row_for
from archive.catalog.sql import SqlCatalog
from archive.catalog.sqlite import SQLiteCatalog
from callrec.manifest import (
    AgentLeg,
    AudioChannel,
    AudioCheck,
    AudioVerdict,
    CallManifest,
    Notice,
    Party,
    Policy,
    Recording,
    RecordingStatus,
)
from callrec.numbering import NumberingPlan

PLAN = NumberingPlan()


def manifest(n: int, caller: str = "0312345678", status: str = "recorded",
             completed: bool = True, at: datetime | None = None) -> CallManifest:
    at = at or datetime(2026, 11, 20, 9, 0, tzinfo=UTC) + timedelta(minutes=n)
    return CallManifest(
        call_id=f"20261120T090000Z-{n:012x}", asterisk_uniqueid="1.1", policy=Policy.FORCE,
        status=RecordingStatus(status), outcome="completed", entered_at=at,
        ended_at=at + timedelta(seconds=30), caller=Party(number_raw=caller, number=caller),
        agents=[AgentLeg(endpoint="alice", channel="PJSIP/alice-1", dial_status="ANSWER")],
        notice=Notice(played=True, completed=completed))


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> SQLiteCatalog:
    """SQLite's own query plans (PostgreSQL's: bench/ reports them at scale, where its
    planner chooses as it will in production)."""
    return SQLiteCatalog(tmp_path / "c.sqlite3", PLAN)


@pytest.mark.parametrize(("number", "e164"), [
    ("0312345678", "+81312345678"), ("+81312345678", "+81312345678"),
    ("0101234567890", "+1234567890"), ("2001", "2001"), ("0", "0"), ("", "")])
def test_e164_under_the_numbering_plan(number: str, e164: str) -> None:
    assert PLAN.e164(number) == e164


def test_searches_use_an_index(sqlite_catalog: SQLiteCatalog) -> None:
    catalog = sqlite_catalog
    plans = {
        "caller": Query(caller="0312345678"), "prefix": Query(caller_prefix="03"),
        "outcome": Query(outcome="complaint", since=datetime(2026, 1, 1, tzinfo=UTC)),
        "did": Query(did="0501"), "time": Query(since=datetime(2026, 1, 1, tzinfo=UTC)),
    }
    for name, q in plans.items():
        where, args = catalog._where(q)
        plan = catalog.db.execute("EXPLAIN QUERY PLAN SELECT call_id FROM calls WHERE "
                                  + " AND ".join(where) + " ORDER BY entered_at DESC LIMIT 100",
                                  args).fetchall()
        text = " ".join(str(row[-1]) for row in plan)
        assert "INDEX" in text, (name, text)
        if name != "prefix":  # the index gives the order: no sort of every match
            assert "TEMP B-TREE" not in text, (name, text)


def test_sync_etag_lookup_uses_an_index(sqlite_catalog: SQLiteCatalog) -> None:
    plan = sqlite_catalog.db.execute(
        "EXPLAIN QUERY PLAN SELECT manifest_key, etag FROM calls WHERE manifest_key IN (?, ?)",
        ("a.json", "b.json")).fetchall()
    assert "calls_key" in " ".join(str(row[-1]) for row in plan), plan


def test_upsert_keeps_daily_counts_right(catalog: SqlCatalog) -> None:
    catalog.add(manifest(1), "k1.json", "e1", False)
    catalog.add(manifest(2, status="unrecorded", completed=False), "k2.json", "e2", False)
    catalog.add(manifest(3, status="interrupted"), "k3.json", "e3", False)
    catalog.add(manifest(1), "k1.json", "e1b", False)  # the same call again: not counted twice
    [day] = [d for d in catalog.daily(3, today=datetime(2026, 11, 21).date())
             if d.day == "2026-11-20"]
    assert day == DayCounts("2026-11-20", recorded=1, unrecorded=1, interrupted=1,
                            notice_failed=1)
    assert catalog.etags(["k1.json", "k9.json"]) == {"k1.json": "e1b"}


def test_audit_log_is_append_only(catalog: SqlCatalog) -> None:
    catalog.audit("ops", "admin", "cli", "view", "x", {"a": 1})
    for change in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"):
        with pytest.raises(CatalogError, match="append-only"), catalog.transaction() as db:
            db.execute(change)
    catalog.clear()  # a rebuild forgets calls, never the audit log
    assert [r.actor for r in catalog.audit_rows()] == ["ops"]


def test_row_keeps_raw_values_and_searches_normalised(catalog: SqlCatalog) -> None:
    hostile = manifest(5, caller="03-1234-5678")
    hostile.caller = Party(number_raw="03-1234-5678\u202e", name_raw="<b>x</b>",
                           number="0312345678")
    row = row_for(hostile, "k.json", "e", PLAN, legal_hold=True)
    catalog.upsert([row])
    [found] = catalog.search(Query(caller="+81 3 1234 5678"))
    assert found.caller_raw == "03-1234-5678\u202e" and found.caller_name == "<b>x</b>"
    assert found.legal_hold and found.duration_s == 30.0


def test_calls_are_found_by_what_the_audio_check_heard(catalog: SqlCatalog) -> None:
    verdicts = [None, AudioVerdict.CLEAN, AudioVerdict.CUSTOMER_SILENT, AudioVerdict.SILENT]
    for n, verdict in enumerate(verdicts):
        m = manifest(n)
        check = None if verdict is None else AudioCheck(
            verdict=verdict, from_s=5.0, speech_s={AudioChannel.MIX: 0.0})
        m.recording = Recording(path=f"/spool/{n}.wav", audio_check=check)
        catalog.add(m, f"k{n}.json", "e", False)

    def found(audio: str) -> list[str]:
        return sorted(r.audio for r in catalog.search(Query(audio=audio)))

    assert found("") == ["", "clean", "customer_silent", "silent"]
    assert found("problem") == ["customer_silent", "silent"]  # unchecked is not a problem
    assert found("customer_silent") == ["customer_silent"]


def test_unopenable_catalog_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(CatalogError, match="dir.sqlite3"):
        SQLiteCatalog(tmp_path / "dir.sqlite3", PLAN)
