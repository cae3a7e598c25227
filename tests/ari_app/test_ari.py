"""The ARI client's REST over the events websocket, against a small stand-in for Asterisk's
websocket (the real one is exercised by every integration test's calls)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from ari_app.ari import AriClient, AriError, AriHttpError, Event
from ari_app.config import AriSettings


async def fake_asterisk(request: web.Request) -> web.WebSocketResponse:
    """Answers RESTRequests like res/ari/ari_websockets.c; "hang" closes without answering."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("{not json")  # dropped: the reader goes on to the next message
    # A lone surrogate escape: orjson refuses it, the stdlib reads it.
    await ws.send_str('{"type": "StasisStart", "channel": {"id": "c1", "name": "\\ud800"}}')
    async for msg in ws:
        req = json.loads(msg.data)
        if req["uri"] == "hang":
            await ws.close()
            break
        found = req["uri"] == "asterisk/ping"
        query = {q["name"]: q["value"] for q in req.get("query_strings", [])}
        body = {"ping": "pong", "query": query, "body": req.get("message_body")}
        await ws.send_str(json.dumps({
            "type": "RESTResponse", "request_id": req["request_id"],
            "status_code": 200 if found else 404, "message_body": json.dumps(body)}))
    return ws


@pytest.fixture
async def ari() -> AsyncIterator[AriClient]:
    app = web.Application()
    app.router.add_get("/ari/events", fake_asterisk)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = AriClient(AriSettings(url=f"http://127.0.0.1:{port}", password=SecretStr("x")))
    await client.start()
    yield client
    await client.close()
    await runner.cleanup()


async def test_requests_and_events_share_the_websocket(ari: AriClient) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    stopping = asyncio.Event()
    results: dict[str, Any] = {}

    async def on_connect() -> None:
        results["ping"] = await ari.request("PUT", "/asterisk/ping", {"a": 1}, variable="X")
        with pytest.raises(AriHttpError) as missing:
            await ari.request("GET", "/channels/nope")
        results["status"] = missing.value.status
        with pytest.raises(AriError, match="closed"):
            await ari.request("GET", "/hang")
        stopping.set()

    await asyncio.wait_for(ari.run_events(queue.put_nowait, on_connect, stopping), 10)
    assert results["ping"]["query"] == {"variable": "X"}
    assert json.loads(results["ping"]["body"]) == {"a": 1}
    assert results["status"] == 404
    event = await queue.get()
    assert event["type"] == "StasisStart" and event["channel"]["name"] == "\ud800"
    assert queue.empty()
