from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from callrec.manifest import AgentLeg, CallManifest, Party, Policy, RecordingStatus
from callrec.s3.tags import clean, tags_for

ALLOWED = re.compile(r"^[A-Za-z0-9 _.:/=+\-@]*$")


@pytest.mark.parametrize("hostile", [
    "a&outcome=x", "../../etc/x", "<script>alert(1)</script>", "\u202eevil\u202c",
    "山田 \U0001f600", "x" * 4096, "line\nbreak\ttab", "=HYPERLINK(\"http://x\")", "\udcff",
])
def test_tag_values_obey_s3_rules(hostile: str) -> None:
    value = clean(hostile)
    assert ALLOWED.match(value), value
    assert len(value) <= 256


def test_tags_for_a_manifest() -> None:
    m = CallManifest(
        call_id="20261123T000000Z-abcdef012345", asterisk_uniqueid="1.1", policy=Policy.FORCE,
        status=RecordingStatus.RECORDED, outcome="complaint", entered_at=datetime.now(UTC),
        did="0312345678", caller=Party(number_raw="a&b", number="", name_raw="x"),
        agents=[AgentLeg(endpoint="agent-busy", channel="c1", dial_status="BUSY"),
                AgentLeg(endpoint="agent-answer", channel="c2", dial_status="ANSWER")])
    assert tags_for(m) == {"caller": "", "agent": "agent-answer", "outcome": "complaint",
                           "did": "0312345678", "status": "recorded"}
