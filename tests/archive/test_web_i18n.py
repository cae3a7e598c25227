"""The web UI speaks Japanese and English: the browser's language, overridable (and kept) per
browser with the language links; the flagged-calls page and the dashboard in both."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from archive.service import Archive
from tests.helpers import WEB_PASSWORD, WEB_USER, login_token

Client = tuple[TestClient[Any, Any], Archive]
JA = {"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.5"}


async def test_japanese_from_the_browser_english_on_request(web_client: Client) -> None:
    http, _ = web_client
    page = await (await http.get("/login", headers=JA)).text()
    assert '<html lang="ja">' in page and "<h1>ログイン</h1>" in page
    token = await login_token(http)
    reply = await http.post("/login", headers=JA, allow_redirects=False, data={
        "user": WEB_USER, "password": "wrong", "csrf": token})
    assert reply.status == 401 and "パスワードが違います" in await reply.text()
    reply = await http.post("/login", allow_redirects=False, data={
        "user": WEB_USER, "password": WEB_PASSWORD, "csrf": token})
    assert reply.status == 303
    for path, ja, en in (("/flagged", "要確認の通話", "Flagged calls"),
                         ("/", "キュー別（過去 30 日間）", "Queues (last 30 days)"),
                         ("/calls?status=recorded", "録音済み", "recorded")):
        assert ja in await (await http.get(path, headers=JA)).text(), path
        assert en in await (await http.get(path)).text(), path
    # The user's choice wins over the browser's, and is kept.
    switch = await http.get("/flagged?lang=en&flag=any", headers=JA, allow_redirects=False)
    assert switch.status == 303 and switch.headers["Location"] == "/flagged?flag=any"
    assert "HttpOnly" in switch.headers["Set-Cookie"]
    page = await (await http.get("/flagged", headers=JA)).text()
    assert '<html lang="en">' in page and "Flagged calls" in page
    assert re.search(r'<a href="\?lang=ja"[^>]*>日本語</a>', page)


async def test_a_users_pick_follows_them_to_another_browser(web_client: Client) -> None:
    http, _ = web_client

    async def log_in() -> None:
        token = await login_token(http)
        reply = await http.post("/login", allow_redirects=False, data={
            "user": WEB_USER, "password": WEB_PASSWORD, "csrf": token})
        assert reply.status == 303

    await log_in()
    assert "Flagged calls" in await (await http.get("/flagged")).text()
    await http.get("/flagged?lang=ja", allow_redirects=False)
    http.session.cookie_jar.clear()  # another browser: no cookies, English by its headers
    assert "<h1>Log in</h1>" in await (await http.get("/login")).text()
    await log_in()
    page = await (await http.get("/flagged", headers={"Accept-Language": "en"})).text()
    assert '<html lang="ja">' in page and "要確認の通話" in page
