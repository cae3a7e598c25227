"""The uploader's SQLite journal: states across attempts and restarts, pruning, failures."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from uploader.journal import State, UploadJournal, UploadJournalError


def test_attempts_states_and_a_killed_run(tmp_path: Path) -> None:
    journal = UploadJournal(tmp_path / "j.sqlite3")
    assert journal.start("c1", 100, "k/c1") is None  # first attempt
    journal.mark("c1", State.FAILED, "S3 down")
    assert journal.start("c1", 100, "k/c1") is State.FAILED
    assert journal.attempts("c1") == 2
    journal.start("c2", 5, "k/c2")
    journal.close()  # killed mid-upload of c1 and c2

    again = UploadJournal(tmp_path / "j.sqlite3")
    assert sorted(again.interrupted()) == ["c1", "c2"]
    again.mark("c1", State.DONE)
    again.mark("q", State.QUARANTINED, "unreadable manifest")  # no earlier row
    assert again.states() == {"done": 1, "uploading": 1, "quarantined": 1}


def test_prune_keeps_recent_and_unfinished_rows(tmp_path: Path) -> None:
    journal = UploadJournal(tmp_path / "j.sqlite3", keep_done_days=0)
    journal.start("old", 1, "k")
    journal.mark("old", State.DONE)
    journal.start("open", 1, "k")
    time.sleep(0.01)
    assert journal.prune() == 1
    assert journal.states() == {"uploading": 1}


def test_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    journal = UploadJournal(tmp_path / "missing-dir" / "j.sqlite3")
    with pytest.raises(UploadJournalError, match="missing-dir"):
        journal.start("c1", 1, "k")
