"""Review flags in the catalog (archive/flags.py): long calls, repeat callers, agents' hot-keys;
a review outlives a new manifest version; searches find flagged calls not yet reviewed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archive.catalog import Query
from archive.catalog.rows import row_for
from archive.catalog.sql import SqlCatalog
from callrec.manifest import CallManifest, EventKind, Party, Policy, RecordingStatus, TimelineEvent
from callrec.numbering import NumberingPlan

PLAN = NumberingPlan()
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def call(n: int, caller: str = "0312345678", at: datetime = T0, minutes: float = 5,
         events: tuple[EventKind, ...] = ()) -> CallManifest:
    return CallManifest(
        call_id=f"20261120T090000Z-{n:012x}", asterisk_uniqueid="1.1", policy=Policy.FORCE,
        status=RecordingStatus.RECORDED, outcome="completed", entered_at=at,
        ended_at=at + timedelta(minutes=minutes),
        caller=Party(number_raw=caller, number=caller),
        timeline=[TimelineEvent(at=at, kind=k) for k in events])


def flags(catalog: SqlCatalog, n: int) -> str:
    row = catalog.get(f"20261120T090000Z-{n:012x}")
    assert row is not None
    return str(row.flags)


def test_long_calls_and_hot_keys_are_flagged(catalog: SqlCatalog) -> None:
    catalog.add(call(1, minutes=59.9), "1.json", "e", False)
    catalog.add(call(2, caller="0399999999", minutes=60), "2.json", "e", False)
    catalog.add(call(3, caller="0388888888", events=(EventKind.WARNING_PLAYED,
                                                     EventKind.ENDED_BY_AGENT)), "3.json", "e",
                False)
    assert (flags(catalog, 1), flags(catalog, 2)) == ("", "long_call")
    assert flags(catalog, 3) == "agent_warning,ended_by_agent"


def test_the_third_call_within_a_day_is_a_repeat_in_any_order(catalog: SqlCatalog) -> None:
    # Synced out of order: the 3rd call in time arrives first.
    times = {1: T0, 2: T0 + timedelta(hours=5), 3: T0 + timedelta(hours=23),
             4: T0 + timedelta(hours=30)}
    for n in (3, 1, 4, 2):
        catalog.add(call(n, at=times[n]), f"{n}.json", "e", False)
    assert [flags(catalog, n) for n in (1, 2, 3, 4)] == ["", "", "repeat_caller", ""]
    catalog.add(call(5, caller="", at=T0), "5.json", "e", False)  # anonymous: never
    catalog.add(call(6, caller="", at=T0), "6.json", "e", False)
    catalog.add(call(7, caller="", at=T0), "7.json", "e", False)
    assert flags(catalog, 7) == ""


def test_review_outlives_a_new_manifest_version_and_leaves_the_flagged_list(
    catalog: SqlCatalog,
) -> None:
    m = call(1, minutes=90)
    catalog.add(m, "1.json", "e", False)
    open_flags = Query(flag="any", unreviewed=True)
    assert [r.call_id for r in catalog.search(open_flags)] == [m.call_id]
    catalog.set_reviewed(m.call_id, "sv1 2026-11-21T00:00:00Z")
    catalog.upsert([row_for(m.with_outcome("harassment", "ops", T0), "1.json", "e2", PLAN,
                            False)])
    row = catalog.get(m.call_id)
    assert row is not None and row.reviewed == "sv1 2026-11-21T00:00:00Z"
    assert row.outcome == "harassment"
    assert catalog.search(open_flags) == []
    assert [r.call_id for r in catalog.search(Query(flag="long_call"))] == [m.call_id]
    assert catalog.search(Query(flag="repeat_caller")) == []
