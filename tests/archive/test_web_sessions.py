"""Sessions that can be revoked: a logout, a user removed from the config or demoted in it take
effect on the very next request, whatever the browser still holds."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from archive.config import User
from archive.service import Archive
from archive.web.app import COOKIE
from tests.helpers import WEB_PASSWORD, WEB_USER, login_token

Client = tuple[TestClient[Any, Any], Archive]


async def login(http: TestClient[Any, Any]) -> tuple[str, str]:
    """(session cookie, CSRF token) of a fresh login as WEB_USER."""
    token = await login_token(http)
    reply = await http.post("/login", data={"user": WEB_USER, "password": WEB_PASSWORD,
                                            "csrf": token},
                            allow_redirects=False)
    assert reply.status == 303
    cookie = reply.cookies[COOKIE].value
    page = await (await http.get("/calls")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return cookie, found.group(1)


async def replay(http: TestClient[Any, Any], cookie: str) -> int:
    """The status of a page asked for with this cookie alone (an attacker who kept it)."""
    http.session.cookie_jar.clear()
    reply = await http.get("/calls", headers={"Cookie": f"{COOKIE}={cookie}"},
                           allow_redirects=False)
    return reply.status


async def test_after_logout_the_old_cookie_is_worth_nothing(web_client: Client) -> None:
    http, archive = web_client
    cookie, csrf = await login(http)
    assert await replay(http, cookie) == 200
    http.session.cookie_jar.update_cookies({COOKIE: cookie})
    out = await http.post("/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert await replay(http, cookie) == 303  # to the login page
    post = await http.post("/calls/20261123T164052Z-c1005ac3d30b/hold", data={"csrf": csrf},
                           headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False)
    assert post.status == 303 and post.headers["Location"] == "/login"
    held = archive.catalog.audit_rows(limit=50, newest_first=True)
    assert not any(r.action == "hold" for r in held)


async def test_a_removed_or_demoted_user_is_refused_at_once(web_client: Client) -> None:
    http, archive = web_client
    users = archive.settings.web.users
    cookie, _ = await login(http)
    users[WEB_USER] = User(role="viewer", password_hash=users[WEB_USER].password_hash)
    assert await replay(http, cookie) == 303  # demoted: log in again, as a viewer
    users[WEB_USER] = User(role="supervisor", password_hash=users[WEB_USER].password_hash)
    cookie, _ = await login(http)
    del users[WEB_USER]
    assert await replay(http, cookie) == 303
