"""The web UI's pages (a session login, CSRF on every POST): the dashboard, search, a call's
page and player, the CSV export, outcome changes, legal holds, flagged calls, marked callers and
the audit log. Every one goes through :class:`archive.service.Archive`, which checks roles and
writes the audit log; the evidence pages are in ``evidence.py``, the JSON API in ``api.py``.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from dataclasses import asdict
from importlib import resources
from typing import Any

from aiohttp import web

from archive.auth import same
from archive.catalog import DayCounts
from archive.flags import FLAGS
from archive.render import csv_cell, plain
from archive.web.app import ACTOR, CALL, COOKIE, WebApp
from archive.web.i18n import N_
from archive.web.query import audit_filter_from, link_params, query_from
from callrec.ids import CALL_ID as CALL_ID_RE
from callrec.s3.marks import Treatment

LOGIN_COOKIE = "callrec_login"
LOGIN_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
TREATMENTS = tuple(Treatment)  # the gentlest first
CSV_COLUMNS = ("call_id", "entered_at", "caller", "caller_raw", "caller_name", "agent",
               "agent_name", "agents", "queue", "queue_wait_s", "abandoned", "did",
               "direction", "outcome", "status", "status_reason", "notice_completed",
               "duration_s", "legal_hold", "sha256", "size")


class Pages:
    """The web UI's pages (session login, CSRF on POST)."""

    def __init__(self, w: WebApp) -> None:
        self.w = w

    CSS = resources.files("archive").joinpath("templates/style.css").read_text()

    async def style(self, request: web.Request) -> web.Response:
        return web.Response(text=self.CSS, content_type="text/css")

    async def login_form(self, request: web.Request) -> web.Response:
        return self.login_page(request)

    def login_page(self, request: web.Request, status: int = 200,
                   error: str = "") -> web.Response:
        """The form carries a token that must come back with the login, beside the cookie
        holding the same (double submit): a page elsewhere cannot log a browser in."""
        token = request.cookies.get(LOGIN_COOKIE, "")
        if not LOGIN_TOKEN.match(token):  # kept while valid: a second tab, a retry
            token = secrets.token_urlsafe(24)
        response = self.w.page(request, "login.html", status=status, session=None,
                               login_csrf=token, error=error)
        self.w.set_cookie(response, token, name=LOGIN_COOKIE, max_age=3600)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin and origin != self.w.front.origin(request):
            await self.w.refused(request, "web", "cross_origin_login")
            raise web.HTTPForbidden(text="cross-origin login refused")
        form = await request.post()
        user, password = str(form.get("user", ""))[:64], str(form.get("password", ""))[:1024]
        if not same(str(form.get("csrf", "")) or "-", request.cookies.get(LOGIN_COOKIE, "")):
            await self.w.refused(request, "web", "login_csrf")
            raise web.HTTPForbidden(text="the login form expired: reload the page")
        cookie = await self.w.login(request, user, password)
        if cookie is None:
            return self.login_page(request, 401, N_("Wrong user or password (or too many "
                                                    "tries: wait 5 minutes)."))
        response = web.HTTPSeeOther("/")
        self.w.set_cookie(response, cookie)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await self.w.logout(request)  # the session ends on the server, not only in the browser
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def dashboard(self, request: web.Request) -> web.Response:
        days, queues = await self.w.run(self.w.archive.dashboard, request[ACTOR], 30)
        totals = {k: sum(getattr(d, k) for d in days)
                  for k in ("recorded", "interrupted", "unrecorded", "notice_failed")}
        return self.w.page(request, "dashboard.html", chart=chart(days), q=query_from({}),
                           since="", until="", hold="", totals=totals, queues=queues)

    async def calls(self, request: web.Request) -> web.Response:
        q = query_from(request.query)
        q.limit = min(q.limit, 500) + 1  # one more tells whether there is an older page
        rows = await self.w.run(self.w.archive.search, request[ACTOR], q)
        more = len(rows) == q.limit
        rows = rows[:q.limit - 1]
        older = link_params(request.query, before=int(rows[-1].entered_at.timestamp()
                                                      * 1000)) if more and rows else ""
        params = request.query
        return self.w.page(request, "calls.html", rows=rows, more=more, q=q, older=older,
                           since=params.get("since", ""), until=params.get("until", ""),
                           hold=params.get("hold", ""), query_string=link_params(params))

    async def export(self, request: web.Request) -> web.Response:
        q = query_from(request.query, limit_default=1000)
        rows = await self.w.run(self.w.archive.search, request[ACTOR], q, "export")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            writer.writerow([csv_cell(plain(getattr(r, c))) for c in CSV_COLUMNS])
        return web.Response(text=out.getvalue(), content_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="callrec-calls.csv"'})

    async def call(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        row, manifest = self.w.archive.visible(request[ACTOR], *await self.w.run(
            self.w.archive.show, request[ACTOR], call_id))
        return self.w.page(request, "call.html", row=row, m=manifest,
                           manifest_json=manifest.model_dump_json(indent=2),
                           may_change=request[ACTOR].may("outcome"), treatments=TREATMENTS)

    async def audio(self, request: web.Request) -> web.StreamResponse:
        url = await self.w.run(self.w.archive.url, request[ACTOR],
                               request.match_info["call_id"], self.w.settings.web.play_url_s,
                               "play")
        raise web.HTTPFound(url)

    async def download(self, request: web.Request) -> web.StreamResponse:
        url = await self.w.run(self.w.archive.url, request[ACTOR],
                               request.match_info["call_id"], self.w.settings.web.play_url_s,
                               "download")
        raise web.HTTPFound(url)

    async def set_outcome(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        outcome = str((await request.post()).get("outcome", ""))[:64]
        await self.w.run(self.w.archive.set_outcome, request[ACTOR], call_id, outcome)
        raise web.HTTPSeeOther(f"/calls/{call_id}?done=outcome")

    async def hold(self, request: web.Request) -> web.StreamResponse:
        call_id, on = request.match_info["call_id"], request.path.endswith("/hold")
        await self.w.run(self.w.archive.hold, request[ACTOR], call_id, on)
        raise web.HTTPSeeOther(f"/calls/{call_id}?done={'hold' if on else 'release'}")

    async def flagged(self, request: web.Request) -> web.Response:
        """Calls flagged for review (archive/flags.py), newest first; reviewed ones with
        ?all=1."""
        show_all = request.query.get("all") == "1"
        q = query_from({k: v for k, v in request.query.items() if k in ("flag", "before")})
        q.flag, q.unreviewed, q.limit = q.flag or "any", not show_all, 201
        rows = await self.w.run(self.w.archive.search, request[ACTOR], q)
        more, rows = len(rows) == q.limit, rows[:200]
        older = link_params(request.query, before=int(rows[-1].entered_at.timestamp()
                                                      * 1000)) if more and rows else ""
        return self.w.page(request, "flagged.html", rows=rows, q=q, show_all=show_all,
                           older=older, may_review=request[ACTOR].may("review"),
                           flags=FLAGS)

    async def review(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        await self.w.run(self.w.archive.review, request[ACTOR], call_id)
        back = "/flagged" if (await request.post()).get("back") == "flagged" else \
            f"/calls/{call_id}?done=review"
        raise web.HTTPSeeOther(back)

    async def marks(self, request: web.Request) -> web.Response:
        marks = await self.w.run(self.w.archive.marked, request[ACTOR])
        return self.w.page(request, "marks.html", marks=marks, treatments=TREATMENTS,
                           may_mark=request[ACTOR].may("mark"))

    async def set_mark(self, request: web.Request) -> web.StreamResponse:
        """Mark (or unmark: ``active=0``) a caller number; back where the form was."""
        form = await request.post()
        active = form.get("active", "1") != "0"
        await self.w.run(self.w.archive.mark, request[ACTOR], str(form.get("number", ""))[:64],
                         str(form.get("treatment", "warning"))[:20],
                         str(form.get("note", ""))[:500], active)
        back = str(form.get("back", ""))
        target = f"/calls/{back}" if CALL_ID_RE.match(back) else "/marks"
        raise web.HTTPSeeOther(f"{target}?done={'mark' if active else 'unmark'}")

    async def audit(self, request: web.Request) -> web.Response:
        f = audit_filter_from(request.query)
        rows = await self.w.run(self.w.archive.audit_log, request[ACTOR], f.limit, f)
        older = link_params(request.query, before=rows[-1].id) \
            if len(rows) == f.limit else ""
        return self.w.page(request, "audit.html", rows=rows, f=f, older=older)

    def register(self, app: web.Application) -> None:
        app.router.add_get("/style.css", self.style)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/", self.dashboard)
        app.router.add_get("/calls", self.calls)
        app.router.add_get("/calls.csv", self.export)
        app.router.add_get("/calls" + CALL, self.call)
        app.router.add_get("/calls" + CALL + "/audio", self.audio)
        app.router.add_get("/calls" + CALL + "/download", self.download)
        app.router.add_post("/calls" + CALL + "/outcome", self.set_outcome)
        app.router.add_post("/calls" + CALL + "/hold", self.hold)
        app.router.add_post("/calls" + CALL + "/release", self.hold)
        app.router.add_get("/flagged", self.flagged)
        app.router.add_get("/marks", self.marks)
        app.router.add_post("/marks", self.set_mark)
        app.router.add_post("/calls" + CALL + "/review", self.review)
        app.router.add_get("/audit", self.audit)


def chart(days: list[DayCounts], width: int = 720, height: int = 180) -> dict[str, Any]:
    """Stacked bars per day (recorded, interrupted, unrecorded), a dot for notice failures."""
    top = max([d.total for d in days] + [1])
    step = (width - 34) / max(len(days), 1)
    bar = max(step - 3, 1)
    out = []
    for i, d in enumerate(days):
        y, parts = float(height), []
        for kind in ("recorded", "interrupted", "unrecorded"):
            h = getattr(d, kind) / top * (height - 10)
            if h:
                y -= h
                parts.append({"kind": kind, "y": round(y, 1), "h": round(h, 1)})
        out.append({**asdict(d), "x": round(34 + i * step, 1), "parts": parts,
                    "fail_y": round(height - d.notice_failed / top * (height - 10), 1)})
    return {"days": out, "width": width, "height": height, "bar": round(bar, 1), "top": top}
