"""The JSON API (bearer tokens; docs/admin.md, "Archive JSON API"): search, a call's row and
manifest, a presigned URL, outcome changes and legal holds, each through
:class:`archive.service.Archive`, which checks roles and writes the audit log. Everything goes
out as ASCII JSON: every non-ASCII character (bidi overrides included) as ``\\uXXXX``."""

from __future__ import annotations

import json

from aiohttp import web

from archive.render import plain
from archive.web.app import ACTOR, CALL, WebApp
from archive.web.query import query_from, whole


class Api:
    """The JSON API (bearer tokens)."""

    def __init__(self, w: WebApp) -> None:
        self.w = w

    async def search(self, request: web.Request) -> web.Response:
        q = query_from(request.query)
        actor = request[ACTOR]
        rows = await self.w.run(self.w.archive.search, actor, q)
        last = rows[-1].entered_at if len(rows) == q.limit else None
        return json_response({"calls": [r.fields(internal=actor.role == "admin") for r in rows],
                              "next_before": int(last.timestamp() * 1000) if last else None})

    async def show(self, request: web.Request) -> web.Response:
        row, manifest = self.w.archive.visible(request[ACTOR], *await self.w.run(
            self.w.archive.show, request[ACTOR], request.match_info["call_id"]))
        return json_response({"catalog": row, "manifest": manifest.model_dump(mode="json")})

    async def url(self, request: web.Request) -> web.Response:
        # Capped at archive.presign_max_s by Archive.url, like the CLI's --expires.
        expires = whole(request.query.get("expires", str(self.w.settings.archive.presign_s)),
                        "expires", 1, 10**6)
        link = await self.w.run(self.w.archive.url, request[ACTOR],
                                request.match_info["call_id"], expires)
        return json_response({"url": link})

    async def outcome(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            value = str(body["outcome"])
        except (ValueError, KeyError, TypeError, RecursionError):  # JSON nested too deep
            return json_response({"error": 'send {"outcome": "..."}'}, status=400)
        _, m = await self.w.run(self.w.archive.set_outcome, request[ACTOR],
                             request.match_info["call_id"], value)
        return json_response({"call_id": m.call_id, "outcome": m.outcome})

    async def hold(self, request: web.Request) -> web.Response:
        on = request.path.endswith("/hold")
        await self.w.run(self.w.archive.hold, request[ACTOR], request.match_info["call_id"], on)
        return json_response({"call_id": request.match_info["call_id"], "legal_hold": on})

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/calls", self.search)
        app.router.add_get("/api/calls" + CALL, self.show)
        app.router.add_get("/api/calls" + CALL + "/url", self.url)
        app.router.add_post("/api/calls" + CALL + "/outcome", self.outcome)
        app.router.add_post("/api/calls" + CALL + "/hold", self.hold)
        app.router.add_post("/api/calls" + CALL + "/release", self.hold)



def json_response(data: object, status: int = 200) -> web.Response:
    # ensure_ascii: every non-ASCII character (bidi overrides included) goes out as \\uXXXX.
    return web.Response(text=json.dumps(data, ensure_ascii=True, default=plain),
                        content_type="application/json", status=status)
