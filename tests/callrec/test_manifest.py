from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from callrec.durable import write_atomic_group
from callrec.manifest import CallManifest, Policy, RecordingStatus, normalise_number


def manifest(**overrides: object) -> CallManifest:
    fields: dict[str, object] = dict(
        call_id="20261123T000000Z-abcdef012345", asterisk_uniqueid="1.2", policy=Policy.FORCE,
        status=RecordingStatus.RECORDED, outcome="completed", entered_at=datetime.now(UTC))
    fields.update(overrides)
    return CallManifest.model_validate(fields)


@pytest.mark.parametrize(("raw", "expected"), [
    ("0312345678", "0312345678"),
    ("+81-3-1234-5678", "+81312345678"),
    ("０３１２", "0312"),  # full-width digits
    ("a&outcome=x", ""),
    ("../../etc/x", ""),
    ("1+2+3", "123"),
    ("9" * 100, "9" * 32),
])
def test_normalise_number(raw: str, expected: str) -> None:
    assert normalise_number(raw) == expected


def test_write_atomic_round_trips_and_leaves_no_temp(tmp_path: Path) -> None:
    m = manifest(caller={"number_raw": "<script>", "name_raw": "\u202e山田", "number": ""})
    path = m.write_atomic(tmp_path)
    assert path.name == f"{m.call_id}.json"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert CallManifest.read(path) == m
    assert json.loads(path.read_text())["schema_version"] == 1


def test_a_group_is_renamed_in_order_and_a_failure_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renamed: list[str] = []
    real_replace = os.replace

    def replace(src: Path, dst: Path) -> None:
        renamed.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    paths = write_atomic_group(tmp_path, [("a.json.sig", b"sig"), ("a.json", b"{}")])
    assert renamed == ["a.json.sig", "a.json"] and [p.read_bytes() for p in paths] == [b"sig",
                                                                                        b"{}"]
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if bytes(data) == b"second":
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        write_atomic_group(tmp_path, [("b.json.sig", b"first"), ("b.json", b"second")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.json.sig"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 65, "a b"])
def test_call_id_cannot_become_a_path(bad: str) -> None:
    with pytest.raises(ValidationError):
        manifest(call_id=bad)


@pytest.mark.parametrize("bad", ["Completed", "a&b", "", "x" * 33])
def test_outcome_is_a_slug(bad: str) -> None:
    with pytest.raises(ValidationError):
        manifest(outcome=bad)


def test_with_outcome_keeps_an_audit_trail() -> None:
    m = manifest()
    at = datetime(2026, 11, 23, tzinfo=UTC)
    changed = m.with_outcome("complaint", "sv1", at).with_outcome("harassment", "sv2", at)
    assert (changed.outcome, changed.outcome_source) == ("harassment", "ops")
    assert [(c.previous, c.outcome, c.by) for c in changed.outcome_changes] == [
        ("completed", "complaint", "sv1"), ("complaint", "harassment", "sv2")]
    assert m.outcome == "completed" and m.outcome_changes == []  # the original is untouched
    with pytest.raises(ValidationError):
        m.with_outcome("Not Valid", "x", at)


def test_a_manifest_written_before_queues_timelines_and_marks_still_reads() -> None:
    """The fields added since schema 1 first shipped (agents' identity and queue facts,
    queues, parks, abandoned, timeline, marked) are optional: older manifests validate."""
    old = {
        "schema_version": 1, "call_id": "20261101T090000Z-0123456789ab", "direction": "inbound",
        "door": "stasis", "asterisk_uniqueid": "1.1", "policy": "optional",
        "status": "recorded", "outcome": "completed", "outcome_source": "derived",
        "agents": [{"endpoint": "agent-answer", "channel": "PJSIP/agent-answer-00000001",
                    "dial_status": "ANSWER", "answered_at": "2026-11-01T09:00:05Z"}],
        "notice": {"played": True, "completed": True}, "entered_at": "2026-11-01T09:00:00Z"}
    m = CallManifest.model_validate(old)
    assert m.queues == [] and m.timeline == [] and m.marked is None and m.abandoned is None
    assert m.agent() == "agent-answer" and m.queue() == "" and m.agent_name() == ""
