"""Marked callers: marked on an archive server (by a supervisor, or automatically), read from the
bucket by callrec on the PBX host, applied at the caller's next call through either door:
refusal, a warning after the notice, or the supervisors' route. Real S3, real calls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archive.catalog import AuditFilter
from archive.config import ArchiveSettings
from archive.service import Actor, Archive, Forbidden
from callrec.manifest import CallManifest, EventKind
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.sipp import Caller
from testbench.spool import varied_call
from tests.helpers import Ship

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]
SUPERVISOR = Actor("sv1", "supervisor", "web", "127.0.0.1")
VIEWER = Actor("view1", "viewer", "web", "127.0.0.1")
REFRESH_S = 1.0


@pytest.fixture
def marked_callrec(start_callrec: Callable[..., CallrecApp],
                   settings: ArchiveSettings) -> Iterator[CallrecApp]:
    """callrec reading the archive's bucket for marks every second."""
    s3 = settings.s3
    yield start_callrec(
        CALLREC_MARKS__ENABLED="true", CALLREC_MARKS__REFRESH_S=str(REFRESH_S),
        CALLREC_MARKS__SUPERVISOR_ROUTE=json.dumps({
            "context": "callrec-sandbox-queue", "extension": "support", "queue": "support"}),
        CALLREC_S3__ENDPOINT=s3.endpoint or "", CALLREC_S3__BUCKET=s3.bucket,
        CALLREC_S3__ACCESS_KEY=s3.access_key,
        CALLREC_S3__SECRET_KEY=s3.secret_key.get_secret_value())


def placed(caller: Caller, bench: Bench, did: str, number: str, hold_s: float,
           manifests: Manifests) -> CallManifest:
    caller.call(did, hold_s=hold_s, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    return m


@pytest.mark.parametrize("did", ["9001", "8001"], ids=["stasis", "agi"])
def test_a_refused_caller_hears_the_refusal_and_nothing_is_recorded(
    did: str, bench: Bench, caller: Caller, archive: Archive, marked_callrec: CallrecApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    number = unique_caller()
    with pytest.raises(Forbidden):
        archive.mark(VIEWER, number, "refuse")
    archive.mark(SUPERVISOR, number, "refuse", note="threats, 3 calls")
    time.sleep(REFRESH_S * 2.5)  # the stated delay: marks.refresh_s
    m = placed(caller, bench, did, number, 15.0, manifests)
    assert m.marked is not None and m.marked.treatment == "refuse" and m.marked.applied
    assert (m.marked.reason, m.marked.marked_by) == ("manual", "sv1")
    assert m.outcome == "refused" and m.status == "unrecorded"
    assert m.status_reason == "caller_refused" and not m.notice.played and m.recording is None
    assert m.asterisk_channel and bench.asterisk.played(m.asterisk_channel, "callrec/refused")
    assert not bench.asterisk.played(m.asterisk_channel, "callrec/notice") and m.agents == []
    [row] = archive.catalog.audit_page(AuditFilter(action="mark", actor="sv1"))
    assert json.loads(row.detail)["treatment"] == "refuse"
    # Unmarked: the next call is an ordinary one again.
    archive.mark(SUPERVISOR, number, "refuse", active=False)
    time.sleep(REFRESH_S * 2.5)
    caller.call(did, hold_s=7.0, caller_user=number, audio=bench.silence())
    again = [x for x in manifests(number, count=2) if x.call_id != m.call_id]
    assert again[0].marked is None and again[0].status == "recorded"


@pytest.mark.parametrize("did", ["9001", "8001"], ids=["stasis", "agi"])
def test_a_warned_caller_hears_the_notice_then_the_warning(
    did: str, bench: Bench, caller: Caller, archive: Archive, marked_callrec: CallrecApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    number = unique_caller()
    archive.mark(SUPERVISOR, number, "warning")
    time.sleep(REFRESH_S * 2.5)
    m = placed(caller, bench, did, number, 18.0, manifests)
    assert m.marked is not None and m.marked.treatment == "warning"
    kinds = [e.kind for e in m.timeline]
    assert kinds.index(EventKind.NOTICE_ENDED) < kinds.index(EventKind.WARNING_PLAYED) \
        < kinds.index(EventKind.AGENT_OFFERED)  # the warning before the route
    assert m.asterisk_channel and bench.asterisk.played(m.asterisk_channel, "callrec/warning")
    assert m.status == "recorded" and m.outcome == "completed"


def test_a_caller_for_the_supervisors_takes_their_route(
    bench: Bench, caller: Caller, archive: Archive, marked_callrec: CallrecApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    archive.mark(SUPERVISOR, "+81" + number[1:], "supervisor")  # any spelling of the number
    time.sleep(REFRESH_S * 2.5)
    # DID 9001 dials agent-answer directly; the supervisors' route is the queue "support".
    m = placed(caller, bench, "9001", number, 10.0, manifests)
    assert m.marked is not None and m.marked.treatment == "supervisor" and m.marked.applied
    assert [v.queue for v in m.queues] == ["support"] and m.outcome == "completed"


async def test_repeated_harassment_marks_a_caller_automatically(
    settings: ArchiveSettings, ship: Ship, archive: Archive, tmp_path: Path,
) -> None:
    spool = settings.archive.spool
    assert spool is not None
    for i in range(3):
        varied_call(spool, caller_raw="090-7777-0000", outcome="harassment", days_ago=i)
    varied_call(spool, caller_raw="090-7777-1111", outcome="harassment")
    await ship()
    archive.sync()
    marks = {m.number: m for m in archive.marked(SUPERVISOR)}
    assert set(marks) == {"+819077770000"}
    auto = marks["+819077770000"]
    assert (auto.reason, auto.by, auto.treatment) == ("auto", "auto", "warning")
    assert archive.catalog.audit_page(AuditFilter(action="mark", actor="auto"))
    # A supervisor's unmarking holds until new calls say otherwise.
    archive.mark(SUPERVISOR, "09077770000", "warning", active=False)
    archive.sync()
    assert archive.marked(SUPERVISOR) == []
