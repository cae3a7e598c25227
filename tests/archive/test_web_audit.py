"""Every refusal is an audit row with its reason, and the audit page is paged and filtered."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp.test_utils import TestClient

from archive.catalog import AuditFilter
from archive.service import Archive
from archive.web.app import COOKIE
from tests.helpers import WEB_PASSWORD, WEB_USER, login_token

Client = tuple[TestClient[Any, Any], Archive]
UNKNOWN = "20261123T164052Z-c1005ac3d30b"


def reasons(archive: Archive) -> list[str]:
    return [json.loads(r.detail).get("reason", "")
            for r in archive.catalog.audit_page(AuditFilter(action="refused"))]


async def test_each_kind_of_refusal_is_audited(web_client: Client) -> None:
    http, archive = web_client
    await http.get("/calls", allow_redirects=False)  # no session
    await http.get("/calls", headers={"Cookie": f"{COOKIE}=forged"}, allow_redirects=False)
    await http.get("/api/calls")  # no token
    await http.get("/api/calls", headers={"Authorization": "Bearer wrong"})
    await http.post("/login", data={"user": WEB_USER, "password": "x"})  # no form token
    token = await login_token(http)
    await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD,
                                    "csrf": token}, allow_redirects=False)
    await http.post(f"/calls/{UNKNOWN}/hold", data={"csrf": "wrong"})
    await http.post(f"/calls/{UNKNOWN}/hold", data={"csrf": "x"},
                    headers={"Origin": "http://evil.example"})
    await http.get("/calls?before=-1")
    assert set(reasons(archive)) == {"no_session", "bad_session", "no_token", "bad_token",
                                     "login_csrf", "csrf", "cross_origin", "bad_request"}
    page = await (await http.get("/calls")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    await http.get(f"/calls/{UNKNOWN}")
    await http.post(f"/calls/{UNKNOWN}/hold", data={"csrf": csrf.group(1)})
    await http.post("/logout", data={"csrf": csrf.group(1)})
    rows = archive.catalog.audit_page(AuditFilter(call_id=UNKNOWN))
    assert {(r.action, "unknown call" in r.detail) for r in rows} >= {
        ("view", True), ("hold", True)}
    assert archive.catalog.audit_page(AuditFilter(action="logout", actor=WEB_USER))


async def test_the_audit_page_is_paged_and_filtered(web_client: Client) -> None:
    http, archive = web_client
    for i in range(30):
        archive.catalog.audit("ops", "viewer", "cli", "view", f"call-{i}", {})
    archive.settings.web.users[WEB_USER] = archive.settings.web.users[WEB_USER].model_copy(
        update={"role": "admin"})
    token = await login_token(http)
    await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD, "csrf": token})
    first = await (await http.get("/audit?actor=ops&limit=20")).text()
    assert first.count(">call-") == 20 and "call-29" in first and "call-9<" not in first
    older = re.search(r'href="/audit\?([^"]+)">Older', first)
    assert older is not None
    second = await (await http.get("/audit?" + older.group(1).replace("&amp;", "&"))).text()
    assert "call-9<" in second and "call-29" not in second
    one = await (await http.get("/audit?call=call-3")).text()
    assert "call-3<" in one and "call-4<" not in one
    assert (await http.get("/audit?before=abc")).status == 400
