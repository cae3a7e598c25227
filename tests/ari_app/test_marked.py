"""Marked callers as callrec keeps them (ari_app/marked.py): found by any spelling of the number,
and a caller ID no mark can have is a lookup that finds nothing, never an error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ari_app.config import MarkSettings
from ari_app.marked import MarkedCallers
from callrec.numbering import NumberingPlan
from callrec.s3.marks import Mark, MarkStore, Treatment
from callrec.s3.settings import RetentionSettings, S3Settings
from callrec.s3.store import Store


@pytest.fixture
def marked() -> MarkedCallers:
    store = MarkStore(Store(S3Settings()), RetentionSettings())  # never asked: marks set below
    callers = MarkedCallers(MarkSettings(enabled=True), store, NumberingPlan())
    at = datetime(2026, 12, 1, tzinfo=UTC)
    callers.marks = {"+81312345678": Mark(number="+81312345678", treatment=Treatment.REFUSE,
                                          at=at),
                     "+81399999999": Mark(number="+81399999999", treatment=Treatment.WARNING,
                                          at=at, active=False)}
    return callers


def test_any_spelling_of_a_marked_number_finds_its_mark(marked: MarkedCallers) -> None:
    for spelled in ("03-1234-5678", "+81 3 1234 5678", "０３１２３４５６７８",
                    "010 81 3 1234 5678"):
        found = marked.find(spelled)
        assert found is not None and found.treatment is Treatment.REFUSE, spelled
    assert marked.find("0399999999") is None  # unmarked since


@pytest.mark.parametrize("odd", ["", "+", "anonymous", "+" * 40, "9" * 200, "\ud800", "*#"])
def test_odd_caller_ids_are_not_marked(marked: MarkedCallers, odd: str) -> None:
    assert marked.find(odd) is None
