"""A thin ARI client on aiohttp: REST calls and the ``/ari/events`` websocket.

Why not ari-py: it does not import on Python 3 (``No module named 'client'``; unmaintained since
2014), and the Python ARI libraries tried on the bench did not survive a websocket drop.

Asterisk drops a websocket reader that blocks longer than ``websocket_write_timeout`` (100 ms by
default, ari.conf): the reader here only parses and enqueues; handlers run elsewhere. On a drop the
app is deactivated and events meanwhile are lost, not replayed (res/ari/resource_events.c), so the
caller resyncs with ``GET /applications/{app}`` and ``GET /channels`` after each reconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ari_app import AriAppError
from ari_app.config import AriSettings
from callrec.backoff import Backoff

log = logging.getLogger(__name__)
# On raw JSON text: inside a JSON string every quote is escaped, so this matches the key only.
_REST_RESPONSE = re.compile(r'"type"\s*:\s*"RESTResponse"')

Event = dict[str, Any]


class AriError(AriAppError):
    """ARI could not be reached or refused a request."""


class AriHttpError(AriError):
    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"ARI {method} {path}: HTTP {status} {text[:200]}")
        self.status = status


def parse(raw: str) -> Any:
    """ARI's JSON, by orjson (2.8x the stdlib's speed on a 1 KB ARI event, measured; every
    call brings a dozen). Text orjson refuses (a lone surrogate escape, which the stdlib
    accepts) is parsed by the stdlib; text neither reads is an AriError, never an exception
    that ends the reader."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise AriError(f"ARI sent JSON that does not parse: {exc}") from exc


class AriClient:
    def __init__(self, settings: AriSettings) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/") + "/ari"
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None  # REST over it when set
        self._pending: dict[str, asyncio.Future[tuple[int, str]]] = {}
        self._next_id = 0

    async def start(self) -> None:
        # Credentials in the Authorization header only: never api_key= in a URL (URLs get logged).
        auth = aiohttp.encode_basic_auth(self.settings.user,
                                         self.settings.password.get_secret_value())
        self._session = aiohttp.ClientSession(
            headers={"Authorization": auth},
            timeout=aiohttp.ClientTimeout(total=5, connect=2),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise AriError("ARI client not started")
        return self._session

    async def request(self, method: str, path: str, body: Any = None, **params: str | int) -> Any:
        if self._ws is not None:
            status, text = await self._ws_request(self._ws, method, path, body, params)
        else:
            status, text = await self._http_request(method, path, body, params)
        if status >= 300:
            raise AriHttpError(method, path, status, text)
        return parse(text) if text else None

    async def _http_request(self, method: str, path: str, body: Any,
                            params: dict[str, str | int]) -> tuple[int, str]:
        try:
            async with self.session.request(method, self.base + path, params=params or None,
                                             json=body) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriError(f"ARI {method} {path}: {exc!r}") from exc

    async def _ws_request(self, ws: aiohttp.ClientWebSocketResponse, method: str, path: str,
                          body: Any, params: dict[str, str | int]) -> tuple[int, str]:
        """One request over the events websocket: no HTTP request to build, send and parse on
        either side (res/ari/ari_websockets.c answers with a RESTResponse on the same socket)."""
        self._next_id += 1
        request_id = str(self._next_id)
        message: dict[str, Any] = {
            "type": "RESTRequest", "transaction_id": request_id, "request_id": request_id,
            "method": method, "uri": path.lstrip("/"),
            "query_strings": [{"name": k, "value": str(v)} for k, v in params.items()]}
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = orjson.dumps(body).decode()
        reply: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply
        try:
            await ws.send_str(orjson.dumps(message).decode())
            async with asyncio.timeout(5):  # one timer; wait_for wraps the future in another
                return await reply
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            raise AriError(f"ARI {method} {path} over the websocket: {exc!r}") from exc
        finally:
            self._pending.pop(request_id, None)

    def _on_response(self, raw: str) -> None:
        reply = parse(raw)
        if not isinstance(reply, dict):
            raise AriError("ARI sent a RESTResponse that is not an object")
        waiting = self._pending.get(str(reply.get("request_id")))
        if waiting is not None and not waiting.done():
            waiting.set_result((int(reply.get("status_code", 500)),
                                str(reply.get("message_body") or "")))

    def _ws_closed(self) -> None:
        self._ws = None
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(AriError("ARI websocket closed before the reply"))

    # -- the calls the flow needs -------------------------------------------------------------
    async def answer(self, channel: str) -> None:
        await self.request("POST", f"/channels/{quote(channel)}/answer")

    async def play(self, channel: str, media: str, lang: str, playback_id: str) -> Event:
        result: Event = await self.request(
            "POST", f"/channels/{quote(channel)}/play/{quote(playback_id)}", media=media,
            lang=lang)
        return result

    async def playback_exists(self, playback_id: str) -> bool:
        """Asterisk forgets a playback once it has finished."""
        try:
            await self.request("GET", f"/playbacks/{quote(playback_id)}")
        except AriHttpError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{quote(playback_id)}")

    async def continue_in_dialplan(self, channel: str, context: str, extension: str,
                                   priority: int) -> None:
        await self.request("POST", f"/channels/{quote(channel)}/continue", context=context,
                           extension=extension, priority=priority)

    async def set_var(self, channel: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{quote(channel)}/variable", variable=name,
                           value=value)

    async def get_var(self, channel: str, name: str) -> str | None:
        try:
            result = await self.request("GET", f"/channels/{quote(channel)}/variable",
                                        variable=name)
        except AriHttpError as exc:
            if exc.status == 404:
                return None
            raise
        return str(result.get("value")) if result else None

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        try:
            await self.request("DELETE", f"/channels/{quote(channel)}", reason=reason)
        except AriHttpError as exc:
            if exc.status != 404:  # already gone
                raise

    async def subscribe(self, source: str) -> None:
        """Keep receiving a channel's events after it leaves Stasis (``channel:<id>``)."""
        await self.request("POST", f"/applications/{quote(self.settings.app)}/subscription",
                           eventSource=source)

    async def filter_events(self, types: tuple[str, ...]) -> None:
        """Ask Asterisk to send this app only these event types (ARI eventFilter): less JSON
        for Asterisk to build and for us to parse, per call."""
        await self.request("PUT", f"/applications/{quote(self.settings.app)}/eventFilter",
                           body={"allowed": [{"type": t} for t in types]})

    async def about(self) -> tuple[datetime | None, str | None]:
        """(when this Asterisk started, its version). A call that entered before that start
        lost its channel with an earlier Asterisk (a crash or restart while the call was up);
        the version says whether MixMonitor records stereo right (ari_app/rawfile.py)."""
        info = await self.request("GET", "/asterisk/info", only="status,system") or {}
        raw = (info.get("status") or {}).get("startup_time")
        version = (info.get("system") or {}).get("version")
        try:  # "2026-11-23T18:03:44.000+0000"
            started = datetime.fromisoformat(raw).astimezone(UTC) if isinstance(raw, str) \
                else None
        except ValueError:
            log.warning("Asterisk startup time %r not understood", raw)
            started = None
        return started, version if isinstance(version, str) else None

    async def sound_languages(self, sound: str) -> set[str]:
        try:
            result = await self.request("GET", f"/sounds/{quote(sound, safe='')}")
        except AriHttpError as exc:
            if exc.status == 404:
                return set()
            raise
        return {f["language"] for f in result.get("formats", [])}

    # -- events ---------------------------------------------------------------------------------
    async def run_events(
        self,
        on_event: Callable[[Event], None],
        on_connect: Callable[[], Awaitable[None]],
        stopping: asyncio.Event,
        on_state: Callable[[bool], None] = lambda _: None,
        wanted: Callable[[str], bool] = lambda _: True,
    ) -> None:
        """Hand each event to ``on_event`` (which must not block: it runs between websocket
        reads) until ``stopping`` is set; reconnect with backoff. ``wanted`` sees each raw
        message first: what it refuses is never parsed."""
        url = self.base.replace("http", "ws", 1) + "/events"
        params = {"app": self.settings.app, "subscribeAll": "false"}
        pauses = Backoff(first=0.2, cap=5.0)
        while not stopping.is_set():
            try:
                async with self.session.ws_connect(url, params=params, heartbeat=10,
                                                   timeout=aiohttp.ClientWSTimeout(ws_close=2),
                                                   ) as ws:
                    log.info("ARI websocket connected (app %s)", self.settings.app)
                    pauses.reset()
                    reader = asyncio.create_task(self._read(ws, on_event, stopping, wanted))
                    try:
                        if self.settings.rest_over_websocket:
                            self._ws = ws
                        on_state(True)
                        await on_connect()
                        await reader
                    finally:
                        reader.cancel()
                        self._ws_closed()
            except (aiohttp.ClientError, TimeoutError, OSError, AriError) as exc:
                log.warning("ARI websocket: %r; retrying", exc)
            on_state(False)
            if stopping.is_set():
                break
            try:
                await asyncio.wait_for(stopping.wait(), pauses.next())
            except TimeoutError:
                pass

    async def _read(self, ws: aiohttp.ClientWebSocketResponse,
                    on_event: Callable[[Event], None], stopping: asyncio.Event,
                    wanted: Callable[[str], bool]) -> None:
        # One plain receive loop, events handed over directly (no task per message, no queue
        # hop: at 20 calls/s that bookkeeping was a tenth of callrec's CPU); a helper closes
        # the socket when callrec stops.
        closer = asyncio.create_task(self._close_when(stopping, ws))
        try:
            async for msg in ws:  # ends on CLOSE/CLOSING/CLOSED
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_message(msg.data, on_event, wanted)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise AriError(f"ARI websocket error: {ws.exception()!r}")
        finally:
            closer.cancel()
            self._ws_closed()  # requests waiting on this socket fail now, not at their timeout
        if not stopping.is_set():
            raise AriError(f"ARI websocket closed (code {ws.close_code})")

    def _on_message(self, raw: str, on_event: Callable[[Event], None],
                    wanted: Callable[[str], bool]) -> None:
        try:
            if _REST_RESPONSE.search(raw):
                self._on_response(raw)
            elif wanted(raw):
                event = parse(raw)
                if isinstance(event, dict):
                    on_event(event)
        except AriError as exc:  # one unreadable message must not end the reader
            log.error("ARI message dropped: %s", exc)

    @staticmethod
    async def _close_when(stopping: asyncio.Event, ws: aiohttp.ClientWebSocketResponse) -> None:
        await stopping.wait()
        await ws.close()
