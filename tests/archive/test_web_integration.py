"""The web UI and JSON API served for real (aiohttp on loopback) over the real archive in
SeaweedFS: login, roles, CSRF, audit, inert rendering of hostile caller values."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING

import aiohttp
import pytest
import pytest_asyncio

from archive.config import ArchiveSettings
from archive.service import Archive
from callrec.manifest import (
    Abandonment,
    AbandonPlace,
    CallManifest,
    EventKind,
    Park,
    ParkResult,
    QueueResult,
    QueueVisit,
    TimelineEvent,
)
from testbench.spool import varied_call
from tests.helpers import PASSWORDS, TOKENS, Login, Ship, csrf_of, login_token

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
HOSTILE = ('"><img src=x onerror=alert(1)><script>alert(2)</script>\u202eexe.gpj'
           '=HYPERLINK("http://x")' + "\U0001f600" * 1000)


@pytest_asyncio.fixture
async def calls(settings: ArchiveSettings, ship: Ship, archive: Archive) -> list[CallManifest]:
    spool = settings.archive.spool
    assert spool is not None
    made = [varied_call(spool, caller_raw="0355556666", name=HOSTILE),
            varied_call(spool, caller_raw="=1+2", name="plain")]
    await ship()
    archive.sync()
    return made


async def test_nothing_is_visible_without_login_or_token(served: str,
                                                         calls: list[CallManifest]) -> None:
    call = calls[0].call_id
    async with aiohttp.ClientSession(base_url=served) as anon:
        for path in ("/", "/calls", "/calls.csv", f"/calls/{call}", f"/calls/{call}/audio",
                     f"/calls/{call}/download", "/audit"):
            async with anon.get(path, allow_redirects=False) as r:
                assert (r.status, r.headers.get("Location")) == (303, "/login"), path
                assert r.headers["X-Frame-Options"] == "DENY"
        for path in (f"/calls/{call}/outcome", f"/calls/{call}/hold", "/logout"):
            async with anon.post(path, data={"outcome": "x"}, allow_redirects=False) as r:
                assert r.status == 303, path
        forged = {"Cookie": "callrec_session=eyJ4Ijox.forged"}
        async with anon.get("/calls", headers=forged, allow_redirects=False) as r:
            assert r.status == 303
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic " + TOKENS["desk"][1]}):
            for path in ("/api/calls", f"/api/calls/{call}", f"/api/calls/{call}/url"):
                async with anon.get(path, headers=headers) as r:
                    assert r.status == 401, path
            async with anon.post(f"/api/calls/{call}/outcome", json={"outcome": "x"},
                                 headers=headers) as r:
                assert r.status == 401
        async with anon.get("/login") as r:
            assert r.status == 200 and "default-src 'none'" in r.headers[
                "Content-Security-Policy"]


async def test_roles_csrf_and_audit(login: Login, served: str, calls: list[CallManifest],
                                    archive: Archive, s3: S3Client,
                                    settings: ArchiveSettings) -> None:
    call = calls[0]
    viewer, supervisor, admin = [await login(u) for u in ("viewer", "supervisor", "admin")]
    token = await csrf_of(viewer, f"/calls/{call.call_id}")
    async with viewer.post(f"/calls/{call.call_id}/outcome",
                           data={"csrf": token, "outcome": "complaint"}) as r:
        assert r.status == 403
    async with viewer.get("/audit") as r:
        assert r.status == 403
    async with viewer.get(f"/calls/{call.call_id}/audio", allow_redirects=False) as r:
        assert r.status == 302 and "X-Amz-Signature" in r.headers["Location"]
    async with viewer.get(f"/calls/{call.call_id}/download", allow_redirects=False) as r:
        assert "attachment" in r.headers["Location"]
    # CSRF: no token, a wrong one, or a cross-origin form are refused.
    token = await csrf_of(supervisor, f"/calls/{call.call_id}")
    for data, headers in (({"outcome": "complaint"}, {}),
                          ({"outcome": "complaint", "csrf": "wrong"}, {}),
                          ({"outcome": "complaint", "csrf": token},
                           {"Origin": "http://evil.example"})):
        async with supervisor.post(f"/calls/{call.call_id}/outcome", data=data,
                                   headers=headers) as r:
            assert r.status == 403
    async with supervisor.post(f"/calls/{call.call_id}/outcome",
                               data={"csrf": token, "outcome": "complaint"}) as r:
        assert r.status == 200 and "Outcome changed." in await r.text()
    async with supervisor.post(f"/calls/{call.call_id}/hold", data={"csrf": token}) as r:
        assert r.status == 200 and 'id="hold">ON' in await r.text()
    key = f"recordings/{call.entered_at:%Y/%m/%d}/{call.call_id}.wav"
    tags = {t["Key"]: t["Value"] for t in
            s3.get_object_tagging(Bucket=settings.s3.bucket, Key=key)["TagSet"]}
    assert tags["outcome"] == "complaint"
    # The API: a viewer token may read, not change; a supervisor token may change.
    wall = {"Authorization": f"Bearer {TOKENS['wall'][1]}"}
    desk = {"Authorization": f"Bearer {TOKENS['desk'][1]}"}
    async with aiohttp.ClientSession(base_url=served) as api:
        async with api.get("/api/calls", params={"caller": "03-5555-6666"}, headers=wall) as r:
            assert [c["call_id"] for c in (await r.json())["calls"]] == [call.call_id]
        async with api.post(f"/api/calls/{call.call_id}/outcome", json={"outcome": "resolved"},
                            headers=wall) as r:
            assert r.status == 403
        async with api.post(f"/api/calls/{call.call_id}/outcome", json={"outcome": "resolved"},
                            headers=desk) as r:
            assert (r.status, await r.json()) == (200, {"call_id": call.call_id,
                                                        "outcome": "resolved"})
        async with api.post(f"/api/calls/{call.call_id}/outcome", json={"outcome": "A&B"},
                            headers=desk) as r:
            assert r.status == 400 and "rejected" in (await r.json())["error"]
    async with admin.get("/audit") as r:
        assert r.status == 200
    seen = {(r.actor, r.via, r.action) for r in archive.catalog.audit_rows(limit=500)}
    assert seen >= {("viewer", "web", "login"), ("viewer", "web", "view"),
                    ("viewer", "web", "play"), ("viewer", "web", "download"),
                    ("viewer", "web", "outcome"), ("viewer", "web", "audit"),
                    ("supervisor", "web", "outcome"), ("supervisor", "web", "hold"),
                    ("wall", "api", "search"), ("wall", "api", "outcome"),
                    ("desk", "api", "outcome"), ("admin", "web", "audit")}


async def test_hostile_caller_values_stay_inert(login: Login, calls: list[CallManifest]) -> None:
    viewer = await login("viewer")
    pages = []
    for path in (f"/calls/{calls[0].call_id}", "/calls?caller_prefix=03"):
        async with viewer.get(path) as r:
            pages.append(await r.text())
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
        assert "\u202e" not in html and "\\u202e" in html
    async with viewer.get("/calls.csv") as r:
        rows = list(csv.reader(io.StringIO(await r.text())))
    header, body = rows[0], rows[1:]
    names = {row[header.index("caller_name")] for row in body}
    raws = {row[header.index("caller_raw")] for row in body}
    assert "'=1+2" in raws and all(not c.startswith(("=", "+", "-", "@"))
                                   for row in body for c in row)
    assert any("<script>" in n and "\u202e" not in n for n in names)  # text, not markup
    async with viewer.get("/calls", params={"caller": "<script>"}) as r:
        assert r.status == 200 and "<script>" not in await r.text()
    wall = {"Authorization": f"Bearer {TOKENS['wall'][1]}"}
    async with viewer.get("/api/calls", headers=wall) as r:
        text = await r.text()
        assert r.content_type == "application/json" and text.isascii()
        assert HOSTILE in {c["caller_name"] for c in json.loads(text)["calls"]}


async def test_login_failures_are_throttled_and_audited(served: str, archive: Archive) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # keeps cookies of an IP address host (127.0.0.1)
    async with aiohttp.ClientSession(base_url=served, cookie_jar=jar) as client:
        token = await login_token(client)
        for _ in range(5):
            async with client.post("/login", data={"user": "admin", "password": "nope",
                                                   "csrf": token}) as r:
                assert r.status == 401
        async with client.post("/login", data={"user": "admin", "password": PASSWORDS["admin"],
                                               "csrf": token}) as r:
            assert r.status == 401  # throttled, even with the right password
    actions = [r.action for r in archive.catalog.audit_rows()]
    assert actions.count("login_failed") == 5 and "login_throttled" in actions
    assert all("nope" not in json.dumps(r.fields()) for r in archive.catalog.audit_rows())


async def test_viewers_see_no_server_paths_and_s3_answers_no_store(
        login: Login, served: str, calls: list[CallManifest]) -> None:
    call = calls[0]
    viewer, admin = await login("viewer"), await login("admin")
    async with viewer.get(f"/calls/{call.call_id}") as r:
        page = await r.text()
        assert r.status == 200 and "/audio" in page  # the player is there
        assert "recordings/" not in page and "/spool" not in page
    wall = {"Authorization": f"Bearer {TOKENS['wall'][1]}"}
    async with aiohttp.ClientSession(base_url=served) as api:
        async with api.get(f"/api/calls/{call.call_id}", headers=wall) as r:
            shown = await r.json()
        async with api.get("/api/calls", headers=wall) as r:
            listed = (await r.json())["calls"]
    assert not {"manifest_key", "recording_key", "etag"} & (set(shown["catalog"])
                                                            | set(listed[0]))
    assert "/" not in shown["manifest"]["recording"]["path"]  # the file name only
    assert call.recording is not None
    where = call.recording.path.rsplit("/", 1)[0]
    assert where not in page
    async with admin.get(f"/calls/{call.call_id}") as r:
        assert where in await r.text()  # admins see where things are
    async with viewer.get(f"/calls/{call.call_id}/audio", allow_redirects=False) as r:
        presigned = r.headers["Location"]
    async with aiohttp.ClientSession() as s3, s3.get(presigned) as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"


async def test_queue_facts_on_the_call_page_the_search_and_the_dashboard(
    settings: ArchiveSettings, ship: Ship, archive: Archive, login: Login,
) -> None:
    spool = settings.archive.spool
    assert spool is not None
    m = varied_call(spool, caller_raw="0311110000", agents=("agent-07", "agent-09"))
    at = m.entered_at
    offered = [leg.model_copy(update={
        "agent_id": name, "agent_name": name, "member_name": name, "queue": "support",
        "interface": f"Local/{i}@from-queue/n", "device": leg.endpoint, "offered_at": at,
        "dial_status": "ANSWER" if i == 0 else "CANCEL"}) for i, (leg, name) in
        enumerate(zip(m.agents, ("Sato <b>Hanako</b>", "Suzuki Ichiro"), strict=True))]
    m = m.model_copy(update={"agents": offered, "queues": [QueueVisit(
        queue="support", entered_at=at, left_at=at + timedelta(seconds=12), wait_s=12.0,
        result=QueueResult.ANSWERED)], "parks": [Park(
            lot="default", space="701", parked_at=at, parked_by="PJSIP/agent-07",
            ended_at=at, retrieved_by="PJSIP/agent-09-0000001", result=ParkResult.RETRIEVED)]})
    m.write_atomic(spool)
    gone = varied_call(spool, caller_raw="0311110001", agents=(), outcome="abandoned")
    gone = gone.model_copy(update={"queues": [QueueVisit(
        queue="support", entered_at=at, wait_s=30.5, result=QueueResult.ABANDONED)],
        "abandoned": Abandonment(where=AbandonPlace.QUEUE, after_s=30.5, queue="support")})
    gone.write_atomic(spool)
    await ship()
    archive.sync()
    viewer = await login("viewer")
    async with viewer.get(f"/calls/{m.call_id}") as r:
        page = await r.text()
    assert r.status == 200, page
    assert "Sato &lt;b&gt;Hanako&lt;/b&gt;" in page and "<b>Hanako" not in page
    assert "Suzuki Ichiro" in page and "CANCEL" in page and "support: answered" in page
    assert "701" in page and "retrieved by PJSIP/agent-09-0000001" in page
    async with viewer.get(f"/calls/{gone.call_id}") as r:
        assert "abandoned (queue support after 30.5 s)" in await r.text()
    async with viewer.get("/calls", params={"queue": "support", "agent": "suzuki ichiro"}) as r:
        listed = await r.text()
    assert m.call_id in listed and gone.call_id not in listed
    async with viewer.get("/") as r:
        dashboard = await r.text()
    row = re.search(r'<tr data-queue="support">(.*?)</tr>', dashboard, re.S)
    assert row, dashboard
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert cells[1:4] == ["2", "1", "1"], cells  # calls, answered, abandoned in the queue


async def test_flagged_page_review_and_timeline_links(
    settings: ArchiveSettings, ship: Ship, archive: Archive, login: Login,
) -> None:
    spool = settings.archive.spool
    assert spool is not None
    m = varied_call(spool, caller_raw="0322220000", name=HOSTILE)
    assert m.recording is not None
    start = m.entered_at
    m = m.model_copy(update={"recording": m.recording.model_copy(
        update={"started_at": start}), "timeline": [
        TimelineEvent(at=start + timedelta(seconds=3), offset_s=3.0,
                      kind=EventKind.NOTICE_ENDED),
        TimelineEvent(at=start + timedelta(seconds=75.5), offset_s=75.5,
                      kind=EventKind.WARNING_PLAYED, by="<b>agent</b>")]})
    m.write_atomic(spool)
    await ship()
    archive.sync()
    viewer, supervisor = await login("viewer"), await login("supervisor")
    async with viewer.get("/flagged") as r:
        page = await r.text()
    assert r.status == 200 and f'data-call="{m.call_id}"' in page and "agent_warning" in page
    assert "Mark reviewed" not in page  # a viewer may not review
    async with viewer.get(f"/calls/{m.call_id}") as r:
        call_page = await r.text()
    # The timeline links start the recording at each event's offset (a media fragment).
    assert f'href="/calls/{m.call_id}/audio#t=75.5">1:15.5</a>' in call_page
    assert "&lt;b&gt;agent&lt;/b&gt;" in call_page and "<b>agent" not in call_page
    csrf = await csrf_of(supervisor, "/flagged")
    async with supervisor.post(f"/calls/{m.call_id}/review",
                               data={"csrf": csrf, "back": "flagged"},
                               allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/flagged"
    async with supervisor.get("/flagged") as r:
        assert f'data-call="{m.call_id}"' not in await r.text()
    async with supervisor.get("/flagged?all=1") as r:
        assert f'data-call="{m.call_id}"' in await r.text()
    assert ("supervisor", "review", m.call_id) in {
        (r.actor, r.action, r.call_id) for r in archive.catalog.audit_rows()}
    async with viewer.get("/flagged?flag=nonsense") as r:
        assert r.status == 400
