"""The in-flight journal: one append-only log that a restart (even after kill -9) adopts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ari_app.call import Call
from ari_app.journal import InflightJournal, InflightJournalError
from callrec.manifest import CallManifest, Policy

CHANNEL = {"id": "1.1", "name": "PJSIP/trunk-00000001", "caller": {"number": "0312"},
           "dialplan": {"exten": "9001"}}


def entry() -> CallManifest:
    return Call.from_stasis(CHANNEL, Policy.OPTIONAL).manifest()


def test_a_restart_adopts_the_newest_state_of_calls_not_done(tmp_path: Path) -> None:
    journal = InflightJournal(tmp_path)
    assert journal.open() == []
    first, second, done = entry(), entry(), entry()
    for e in (first, second, done):
        journal.save(e)
    journal.remove(done.call_id)
    newer = first.model_copy(update={"outcome": "complaint"})
    journal.save(newer)
    # No close: what kill -9 leaves behind. The lock went with the process: release it here.
    journal.close()
    again = InflightJournal(tmp_path)
    adopted = {e.call_id: e for e in again.open()}
    assert set(adopted) == {first.call_id, second.call_id}
    assert adopted[first.call_id].outcome == "complaint"
    # Reading it compacted the log to the live calls' newest lines.
    lines = again.path.read_bytes().splitlines()
    assert len(lines) == 2 and all(b'"done"' not in line for line in lines)


def test_a_torn_last_line_is_set_aside_and_the_rest_adopted(tmp_path: Path) -> None:
    journal = InflightJournal(tmp_path)
    journal.open()
    kept = entry()
    journal.save(kept)
    journal.close()
    with journal.path.open("ab") as f:
        f.write(entry().model_dump_json().encode()[:80])  # a crash in the middle of a write
    again = InflightJournal(tmp_path)
    assert [e.call_id for e in again.open()] == [kept.call_id]
    assert (tmp_path / ".inflight" / "journal.bad").read_bytes().startswith(b'{"schema_version"')


def test_the_log_starts_afresh_when_no_call_is_in_flight(tmp_path: Path) -> None:
    journal = InflightJournal(tmp_path, compact_bytes=8 * 1024)
    journal.open()
    for _ in range(20):
        e = entry()
        journal.save(e)
        journal.remove(e.call_id)
    assert journal.path.stat().st_size < 8 * 1024  # emptied along the way, never grew past it
    live = entry()
    journal.save(live)
    for _ in range(40):  # a long call in flight while others come and go: rewritten, not lost
        e = entry()
        journal.save(e)
        journal.remove(e.call_id)
    assert journal.path.stat().st_size < 12 * 1024
    journal.close()
    assert [e.call_id for e in InflightJournal(tmp_path).open()] == [live.call_id]


def test_a_second_callrec_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    journal = InflightJournal(tmp_path)
    journal.open()
    with pytest.raises(InflightJournalError, match="another callrec"):
        InflightJournal(tmp_path).open()
    journal.save(entry())
    journal._rewrite()  # the lock moves with the rewritten file
    with pytest.raises(InflightJournalError, match="another callrec"):
        InflightJournal(tmp_path).open()
    journal.close()
    assert len(InflightJournal(tmp_path).open()) == 1


def test_entries_of_the_per_call_files_of_earlier_versions_are_adopted(tmp_path: Path) -> None:
    old = entry()
    directory = tmp_path / ".inflight"
    directory.mkdir()
    (directory / f"{old.call_id}.json").write_text(old.model_dump_json())
    (directory / "broken.json").write_text("{not json")
    journal = InflightJournal(tmp_path)
    assert [e.call_id for e in journal.open()] == [old.call_id]
    assert not (directory / f"{old.call_id}.json").exists()
    assert (directory / "broken.bad").exists()  # never deleted: set aside for a human
    assert json.loads(journal.path.read_bytes())["call_id"] == old.call_id
