"""callrec's control API: a payment screen or CRM pauses and resumes a call's recording.

    POST /v1/calls/{call_id}/pause     {"by": "crm-user-17"}   (body optional)
    POST /v1/calls/{call_id}/resume
    GET  /v1/calls/{call_id}           the call's recording status and pauses

``Authorization: Bearer <api.token>`` on every request (compared in constant time). The call id is
the one callrec sets on the channel (CALLREC_ID), which the CRM gets with the call's screen pop.
Answers are JSON: ``{"call_id", "state", "paused", "detail"}``; ``state`` is ari_app/pause.py's
Answer. A refused pause is a 409 (the card details must not be taken then); a call callrec does
not follow is a 404. Bound to 127.0.0.1 by default; put it behind the TLS proxy if the payment
screen runs elsewhere.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ari_app import AriAppError
from ari_app.call import Call
from ari_app.config import ApiSettings
from ari_app.pause import Answer, Pauses
from callrec.ids import is_call_id
from callrec.manifest import EventKind, PauseSource

log = logging.getLogger(__name__)

MAX_BODY = 4096
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(http_status: int, **body: Any) -> web.Response:
    return web.json_response(body, status=http_status)


class ControlApi:
    def __init__(self, settings: ApiSettings, calls: dict[str, Call], pauses: Pauses) -> None:
        self.settings, self.calls, self.pauses = settings, calls, pauses
        self.runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        app.router.add_post("/v1/calls/{call_id}/pause", self._pause)
        app.router.add_post("/v1/calls/{call_id}/resume", self._resume)
        app.router.add_get("/v1/calls/{call_id}", self._status)
        return app

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.settings.host, self.settings.port).start()
        log.info("control API on http://%s:%d/v1/", self.settings.host, self.settings.port)

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Auth first; then no request ends in a 500: callrec's own errors are a 503."""
        given = request.headers.get("Authorization", "")
        expected = "Bearer " + self.settings.token.get_secret_value()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="callrec"'})
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return _json(exc.status, error=exc.reason)
        except AriAppError as exc:
            log.warning("control API %s %s: %s", request.method, request.path, exc)
            return _json(503, error="callrec could not do it now", detail=str(exc))

    def _call(self, request: web.Request) -> Call:
        call_id = request.match_info["call_id"]
        found = next((c for c in self.calls.values() if c.call_id == call_id), None) \
            if is_call_id(call_id) else None
        if found is None:
            raise web.HTTPNotFound(reason="no call callrec follows has this id")
        return found

    async def _pause(self, request: web.Request) -> web.Response:
        call, by = self._call(request), await _by(request)
        answer = await self.pauses.pause(call, PauseSource.API, by)
        return self._answer(call, answer, 409 if answer is Answer.REFUSED else 200)

    async def _resume(self, request: web.Request) -> web.Response:
        call = self._call(request)
        return self._answer(call, await self.pauses.resume(call), 200)

    async def _status(self, request: web.Request) -> web.Response:
        call = self._call(request)
        return _json(200, call_id=call.call_id, status=call.status.value,
                     paused=call.paused is not None,
                     pauses=[json.loads(p.model_dump_json()) for p in call.pauses])

    @staticmethod
    def _answer(call: Call, answer: Answer, status: int) -> web.Response:
        last = call.pauses[-1] if call.pauses else None
        detail = last.detail if last and answer is not Answer.REFUSED else None
        if answer is Answer.REFUSED:
            refused = [e for e in call.events if e.kind is EventKind.PAUSE_REFUSED]
            detail = refused[-1].detail if refused else None
        return _json(status, call_id=call.call_id, state=answer.value,
                     paused=call.paused is not None, status=call.status.value, detail=detail)


async def _by(request: web.Request) -> str:
    """Who asked: the body's ``by`` (the CRM's user), else "api"."""
    if not request.can_read_body:
        return "api"
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(reason="the body is not JSON") from exc
    by = body.get("by", "api") if isinstance(body, dict) else None
    if not isinstance(by, str) or not 0 < len(by) <= 64 or not by.isprintable():
        raise web.HTTPBadRequest(reason='"by" must be a printable string of 1 to 64 characters')
    return by
