"""Reconcile's rules over Asterisk's CDR rows: which calls need a trace, which found callrec
down, and the ledger entry such a call gets (archive/evidence/reconcile.py, turned_away.py)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from archive.config import ReconcileSettings
from archive.evidence.reconcile import Reconciler, Reconciliation, read_cdrs
from archive.evidence.turned_away import ledger_entry
from callrec.manifest import CallManifest, Direction, Policy, RecordingStatus
from callrec.reasons import StatusReason
from callrec.s3.layout import Layout
from callrec.s3.settings import S3Settings
from callrec.s3.store import Store
from tests.fakes import FakeBucket, cdr_row

T0 = datetime(2026, 12, 6, 3, 0, 0, tzinfo=UTC)
TRUNK, AGENT = "PJSIP/trunk-0000000a", "PJSIP/6001-0000000b"
DOWN = "callrec|callrec:app_down:optional:9001"


def reconciler(tmp_path: Path, rows: list[list[str]],
               spool: tuple[CallManifest, ...] = ()) -> Reconciler:
    cdr = tmp_path / "Master.csv"
    with cdr.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    (tmp_path / "spool").mkdir(exist_ok=True)
    for m in spool:
        m.write_atomic(tmp_path / "spool")
    settings = ReconcileSettings(cdr=cdr, settle_s=0)
    layout = Layout(S3Settings().key_template)
    return Reconciler(cast(Store, FakeBucket()), layout, settings, tmp_path / "spool")


def test_a_busy_call_that_found_callrec_down_needs_a_trace_and_is_turned_away(
    tmp_path: Path,
) -> None:
    rows = [cdr_row(T0, "0312345678", "9001", TRUNK, AGENT, "Dial", "BUSY", "1.10", "1.10", DOWN),
            # before the marks: a door call routed around by nobody, lastapp tells
            cdr_row(T0, "0399990000", "9001", TRUNK, "", "Stasis", "NO ANSWER", "1.20",
                    "1.20", lastdata="callrec")[:17] + ["", "1.20", "1"],
            # an internal call: no trunk, no trace needed
            cdr_row(T0, "6001", "6002", AGENT, "PJSIP/6002-01", "Dial", "ANSWERED", "1.30",
                    "1.30")]
    report = reconciler(tmp_path, rows).run(T0 - timedelta(minutes=1),
                                            T0 + timedelta(minutes=1))
    assert (report.calls, report.at_door, report.traced) == (2, 2, 0)
    gaps = {g.linkedid: g for g in report.gaps}
    assert (gaps["1.10"].down_policy, gaps["1.10"].did) == ("optional", "9001")
    assert gaps["1.10"].at_door
    assert gaps["1.20"].down_policy == "" and gaps["1.20"].at_door
    assert set(report.turned_away) == {"1.10"}
    report.traced_now("1.10", "20261206T030000Z-0123456789ab", "app_down")
    assert [g.linkedid for g in report.gaps] == ["1.20"]
    assert (report.traced, report.by_reason, report.entered) == (
        1, {"app_down": 1}, ["20261206T030000Z-0123456789ab"])


def test_a_call_with_its_manifest_in_the_spool_is_traced(tmp_path: Path) -> None:
    row = cdr_row(T0, "0312345678", "9001", TRUNK, AGENT, "Dial", "ANSWERED", "1.40", "1.40",
                  "callrec")
    [parsed] = list(read_cdrs(_write(tmp_path, [row]), _report()))
    m = ledger_entry([parsed], "1.40", "optional", "9001", lambda c: c.startswith("PJSIP/trunk"))
    report = reconciler(tmp_path, [row], (m,)).run(T0 - timedelta(minutes=1),
                                                  T0 + timedelta(minutes=1))
    assert (report.calls, report.traced, report.gaps) == (1, 1, [])
    assert report.by_reason == {"app_down": 1}


def test_a_window_reaching_past_the_settling_time_is_clamped_and_says_so(tmp_path: Path) -> None:
    r = reconciler(tmp_path, [])
    r.settings.settle_s = 300
    asked = datetime.now(UTC)
    report = r.run(asked - timedelta(hours=1), asked)
    assert report.clamped_from == asked.isoformat()
    assert datetime.fromisoformat(report.until) <= asked - timedelta(seconds=299)
    assert r.run(asked - timedelta(hours=1), asked - timedelta(hours=1)).clamped_from == ""


def test_the_ledger_entry_of_a_turned_away_call(tmp_path: Path) -> None:
    rows = [cdr_row(T0, "0312345678", "busy", TRUNK, AGENT, "Dial", "BUSY", "1.10", "1.10",
                    DOWN, seconds=3)]
    [parsed] = list(read_cdrs(_write(tmp_path, rows), _report()))
    trunk = lambda c: c.startswith("PJSIP/trunk")  # noqa: E731
    m = ledger_entry([parsed], "1.10", "optional", "9001", trunk)
    assert (m.door, m.status, m.status_reason, m.policy) == (
        "none", RecordingStatus.UNRECORDED, StatusReason.APP_DOWN, Policy.OPTIONAL)
    assert (m.direction, m.did, m.caller.number, m.caller.name_raw) == (
        Direction.INBOUND, "9001", "0312345678", "Caller")
    assert (m.outcome, m.asterisk_uniqueid, m.asterisk_linkedid) == ("no_agent", "1.10", "1.10")
    assert [(a.endpoint, a.dial_status, a.answered_at) for a in m.agents] == [
        ("6001", "BUSY", None)]
    assert m.entered_at == T0 and m.ended_at == T0 + timedelta(seconds=3)
    assert not m.notice.played and m.recording is None
    assert ledger_entry([parsed], "1.10", "force", "9001", trunk).outcome == "failed"
    answered = list(read_cdrs(_write(tmp_path, [cdr_row(
        T0, "0312345678", "9001", TRUNK, AGENT, "Dial", "ANSWERED", "1.11", "1.11", DOWN)]),
        _report()))
    assert ledger_entry(answered, "1.11", "optional", "9001", trunk).outcome == "completed"


def _write(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "one.csv"
    with path.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    return path


def _report() -> Reconciliation:
    return Reconciliation("", "")
