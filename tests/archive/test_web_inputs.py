"""Odd input to the web UI and the API is a clear 400 (or 401/403), never a 500; a 500 that
still happens carries the security headers and is audited."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from archive.service import Archive
from tests.helpers import DESK_TOKEN, WEB_PASSWORD, WEB_USER, login_token

Client = tuple[TestClient[Any, Any], Archive]
API = {"Authorization": f"Bearer {DESK_TOKEN}"}
CALL = "/api/calls/20261123T164052Z-c1005ac3d30b"


async def logged_in(http: TestClient[Any, Any]) -> str:
    """Log in as WEB_USER; the session's CSRF token."""
    token = await login_token(http)
    reply = await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD,
                                            "csrf": token},
                            allow_redirects=False)
    assert reply.status == 303
    page = await (await http.get("/calls")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("query", [
    "before=" + "9" * 30, "before=-5", "before=1.5", "limit=99999999999999999999", "limit=0",
    "min_duration=nan", "max_duration=-1", "since=0000-01-01", "until=2026-13-45",
    "audio=loud", "audio=%00",
])
async def test_bad_search_parameters_are_400(web_client: Client, query: str) -> None:
    http, _ = web_client
    await logged_in(http)
    page = await http.get(f"/calls?{query}")
    api = await http.get(f"/api/calls?{query}", headers=API)
    assert (page.status, api.status) == (400, 400)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_the_end_of_time_is_a_search_not_an_error(web_client: Client) -> None:
    http, _ = web_client
    reply = await http.get("/api/calls?until=9999-12-31", headers=API)
    assert reply.status == 200 and (await reply.json())["calls"] == []


@pytest.mark.parametrize("expires", ["abc", "1e9", "1.5", "0x10", "", "0", "-3"])
async def test_bad_url_lifetimes_are_400(web_client: Client, expires: str) -> None:
    http, _ = web_client
    reply = await http.get(f"{CALL}/url?expires={expires}", headers=API)
    assert reply.status == 400 and "expires" in (await reply.json())["error"]


async def test_json_nested_a_thousand_deep_is_400(web_client: Client) -> None:
    http, _ = web_client
    reply = await http.post(f"{CALL}/outcome", data="[" * 1000 + "]" * 1000,
                            headers={**API, "Content-Type": "application/json"})
    assert reply.status == 400


async def test_non_ascii_credentials_are_refused_not_crashed(web_client: Client) -> None:
    http, _ = web_client
    cookie = await http.get("/calls", headers={"Cookie": "callrec_session=\u00e9t\u00e9.x"},
                            allow_redirects=False)
    bearer = await http.get("/api/calls", headers={"Authorization": "Bearer \u00ff"})
    assert (cookie.status, bearer.status) == (303, 401)
    await logged_in(http)
    form = await http.post(f"{CALL.removeprefix('/api')}/hold", data={"csrf": "\u00e9\u00e9"},
                           allow_redirects=False)
    assert form.status == 403


async def test_a_500_still_carries_the_security_headers_and_is_audited(
        web_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    http, archive = web_client

    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(archive.catalog, "daily", bug)
    await logged_in(http)
    reply = await http.get("/")
    assert reply.status == 500 and "a bug" not in await reply.text()
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["Cache-Control"] == "no-store"
    rows = archive.catalog.audit_rows(limit=5, newest_first=True)
    assert rows[0].action == "server_error" and rows[0].actor == WEB_USER


async def test_a_login_without_the_form_token_is_refused(web_client: Client) -> None:
    """Login CSRF: a page elsewhere posting our login form cannot log a browser in."""
    http, _ = web_client
    bare = await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD},
                           allow_redirects=False)
    token = await login_token(http)
    wrong = await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD,
                                            "csrf": token[::-1]}, allow_redirects=False)
    assert (bare.status, wrong.status) == (403, 403)
    right = await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD,
                                            "csrf": token}, allow_redirects=False)
    assert right.status == 303
