"""Marking caller numbers from the archive (callrec/s3/marks.py says what a mark is and how it
reaches callrec): by a supervisor, or automatically for callers with ``auto_marks.calls`` calls
ended as ``auto_marks.outcome`` (harassment) within ``auto_marks.days`` days. Every mark is
audited (archive/service.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archive.catalog import Catalog
from archive.config import AutoMarkSettings
from callrec.manifest import normalise_number
from callrec.numbering import NumberingPlan
from callrec.s3.marks import NUMBER, Mark, MarkStore


def number_of(raw: str, plan: NumberingPlan) -> str:
    """The number a mark is kept under (E.164 where the plan knows how), or ""."""
    number = plan.e164(normalise_number(raw))
    return number if NUMBER.match(number) else ""


def all_marks(marks: MarkStore) -> list[Mark]:
    """Every number's latest mark, active or not, newest first."""
    _, found = marks.changed({})
    return sorted((m for m in found if m is not None), key=lambda m: m.at, reverse=True)


def active_marks(marks: MarkStore) -> list[Mark]:
    return [m for m in all_marks(marks) if m.active]


def candidates(catalog: Catalog, rules: AutoMarkSettings,
               now: datetime | None = None) -> list[str]:
    """Numbers with enough such calls in the window (the catalog alone: no S3 request)."""
    if not rules.enabled:
        return []
    return _counted(catalog, rules, _window(rules, now), None)


def due_for_auto_mark(catalog: Catalog, rules: AutoMarkSettings, marks: list[Mark],
                      found: list[str], now: datetime | None = None) -> list[str]:
    """Of the ``found`` candidates, those the rule marks now: not marked already. A caller a
    supervisor unmarked is marked again only by calls after the unmarking: their decision
    holds until new calls say otherwise."""
    window = _window(rules, now)
    latest = {m.number: m for m in marks}
    due = []
    for number in found:
        mark = latest.get(number)
        if mark is not None and mark.active:
            continue
        if mark is not None and _counted(catalog, rules, max(window, mark.at), number) == []:
            continue
        due.append(number)
    return due


def _window(rules: AutoMarkSettings, now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=rules.days)


def _counted(catalog: Catalog, rules: AutoMarkSettings, since: datetime,
             number: str | None) -> list[str]:
    """Numbers (or just ``number``) with at least ``rules.calls`` such calls since then."""
    found = catalog.callers_with(rules.outcome, since, rules.calls, number)
    return [n for n in found if NUMBER.match(n)]
