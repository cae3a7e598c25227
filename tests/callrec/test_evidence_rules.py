"""The chain half of archive verify (callrec/evidence/rules.py), on made-up entries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from callrec.evidence.rules import ChainCheck, Checked, Checkpoint
from callrec.manifest import ChainLink

OLD = datetime.now(UTC) - timedelta(days=1)
KEY = "pbx1/0123456789abcdef"


def entry(seq: int, prev: int | None = None, sha: str | None = None,
          modified: datetime = OLD) -> Checked:
    """Entry ``seq`` of chain pbx1, whose bytes hash to ``h<seq>`` and which names ``h<prev>``."""
    before = seq - 1 if prev is None else prev
    link = ChainLink(chain="pbx1", seq=seq, prev=_h(before) if before else "", key=KEY)
    call_id = f"20261130T000000Z-{seq:012x}"
    return Checked(f"recordings/{call_id}.json", "v1", modified, call_id, "2026-11-30",
                   sha or _h(seq), link, "ok", "")


def _h(n: int) -> str:
    return f"{n:064x}"


def checkpoint(seq: int, first: int, previous: Checkpoint | None, name: str = "") -> Checkpoint:
    body: dict[str, Any] = {
        "seq": seq, "previous": {"seq": previous.seq, "sha256": previous.sha256}
        if previous else None,
        "entries": [[s, f"20261130T000000Z-{s:012x}", _h(s)] for s in range(first, seq + 1)]}
    return Checkpoint.of(name or f"evidence/chains/pbx1/2026/11/30/{seq:04d}.json", "pbx1",
                         f"cp{seq}", body)


def run(versions: list[Checked], cps: list[Checkpoint],
        since: date | None = None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    check = ChainCheck(lambda kind, chain, day, call, detail: found.append((kind, detail)),
                       since, timedelta(minutes=20))
    check.add(versions)
    check.checkpoints("pbx1", cps)
    check.finish(None)
    return found


def test_a_whole_chain_with_its_checkpoints_has_no_problem() -> None:
    one = checkpoint(3, 1, None)
    assert run([entry(n) for n in range(1, 6)], [one, checkpoint(5, 4, one)]) == []


def test_a_deleted_entry_is_missing_by_its_call_id() -> None:
    one = checkpoint(4, 1, None)
    found = run([entry(1), entry(2), entry(4)], [one])
    assert found == [("missing", "entry 3 of chain pbx1 is not in the bucket")]


def test_the_deleted_tip_is_missing_because_a_checkpoint_names_it() -> None:
    assert [k for k, _ in run([entry(1), entry(2)], [checkpoint(3, 1, None)])] == ["missing"]


def test_a_replaced_or_reordered_entry_breaks_the_chain() -> None:
    kinds = [k for k, _ in run([entry(1), entry(2, sha=_h(99)), entry(3)], [])]
    assert "chain_breaks" in kinds  # 3 names h2, the bucket holds h99 at 2
    swapped = [k for k, _ in run([entry(1), entry(2, prev=3), entry(3, prev=1)], [])]
    assert swapped.count("chain_breaks") == 2


def test_two_versions_claiming_one_place_are_a_fork() -> None:
    found = run([entry(1), entry(2), entry(2, sha=_h(77))], [])
    assert ("chain_breaks", "entry 2 claimed by 2 different versions") in found


def test_a_removed_checkpoint_and_uncovered_old_entries_are_reported() -> None:
    one = checkpoint(2, 1, None)
    two = checkpoint(4, 3, one)
    three = checkpoint(5, 5, two)
    versions = [entry(n) for n in range(1, 7)]
    found = run(versions, [one, three])  # the middle checkpoint is gone
    assert [k for k, _ in found] == ["checkpoints_missing", "checkpoints_missing"]
    assert "does not follow" in found[0][1] and "entry 6 is covered by no checkpoint" in found[1][1]
    fresh = [*versions[:5], entry(6, modified=datetime.now(UTC))]
    assert [k for k, _ in run(fresh, [one, two, three])] == []  # not yet due


def test_since_skips_what_came_before_the_period() -> None:
    one = checkpoint(5, 1, None)
    found = run([entry(4), entry(5)], [one], since=date(2026, 12, 1))
    assert found == []  # entries 1-3 are of 2026-11-30, before the period
