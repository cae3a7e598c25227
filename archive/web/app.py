"""What every door of the web UI shares: the settings, the archive (the domain service: every
read and write of the catalog goes through it, audited), the thread pool, the templates in the
user's language, the session cookie, logins, and the audit rows about requests.

The pages (``pages.py``), the JSON API (``api.py``) and the evidence pages (``evidence.py``) use
it; the middlewares (``middleware.py``) guard them; ``server.py`` puts them together and runs
them. Blocking work (SQLite, boto3, scrypt) runs in the pool so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from archive.auth import DUMMY_HASH, same, token_digest, verify_password
from archive.config import ArchiveSettings
from archive.render import inert
from archive.service import Actor, Archive, Via
from archive.sessions import Session
from archive.web.front import Front
from archive.web.i18n import LANGUAGES, N_, Texts, current_language
from archive.web.throttle import LoginThrottle
from callrec.manifest import OUTCOMES

T = TypeVar("T")
COOKIE = "callrec_session"
SESSION = web.RequestKey("session", Session)
ACTOR = web.RequestKey("actor", Actor)
CALL = r"/{call_id:[A-Za-z0-9._-]{1,64}}"  # a call id in a route (callrec/ids.py CALL_ID)
DONE = {"outcome": N_("Outcome changed."), "hold": N_("Legal hold put on."),
        "release": N_("Legal hold released."), "review": N_("Marked reviewed."),
        "mark": N_("Caller marked: every callrec host applies it at their next call."),
        "unmark": N_("Caller unmarked.")}


class WebApp:
    def __init__(self, settings: ArchiveSettings, archive: Archive) -> None:
        self.settings = settings
        self.archive = archive
        self.pool = ThreadPoolExecutor(8, "callrec-web")
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("archive", "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined,
                                      extensions=["jinja2.ext.i18n"])
        self.texts = Texts()
        self.env.install_gettext_callables(  # type: ignore[attr-defined]
            self.texts.gettext, self.texts.ngettext, newstyle=True)
        self.env.filters["label"] = self.texts.label
        self.env.filters["labels"] = self.texts.labels
        self.env.filters["inert"] = inert
        self.env.filters["inert_lines"] = lambda text: "\n".join(
            inert(line) for line in str(text).splitlines())
        self.throttle = LoginThrottle()
        self.front = Front(settings.web)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, functools.partial(fn, *args, **kwargs))

    def address(self, request: web.Request) -> str:
        return self.front.address(request)

    def page(self, request: web.Request, template: str, status: int = 200,
             **values: Any) -> web.Response:
        values.setdefault("session", request.get(SESSION))
        # Fixed texts only: a message taken from the URL would let a link put words on our page.
        session = values["session"]
        if session is not None:  # the user's own pick, made on any browser, comes first
            self.texts.use(session.lang or current_language())
        message = DONE.get(request.query.get("done", ""), "")
        values.setdefault("message", self.texts.gettext(message) if message else "")
        values.setdefault("lang", current_language())
        values.setdefault("languages", LANGUAGES)
        # Fixed messages are translated; others (an error's own text) show as they are.
        values["error"] = self.texts.gettext(values["error"]) if values.get("error") else ""
        html = self.env.get_template(template).render(outcomes=OUTCOMES, **values)
        return web.Response(text=html, content_type="text/html", status=status)

    def refusal(self, request: web.Request, status: int, message: str) -> web.Response:
        if request.path.startswith("/api/"):
            return web.json_response({"error": message}, status=status)
        return self.page(request, "base.html", status=status, error=message)

    # -- the audit rows about requests -----------------------------------------------------------
    async def refused(self, request: web.Request, via: Via, reason: str,
                      actor: Actor | None = None) -> None:
        """Every refusal is an audit row, with its reason (a refused login is one too)."""
        await self.audit_request(request, "refused", via, actor, reason=reason)

    async def audit_request(self, request: web.Request, action: str, via: Via,
                            actor: Actor | None, **detail: str) -> None:
        """An audit row about a request, by its actor if it has one yet ("-" if not)."""
        who = actor or Actor("-", "viewer", "web", self.address(request))
        await self.run(self.archive.audit, Actor(who.name, who.role, via, self.address(request)),
                       action, None, **detail, method=request.method, path=request.path[:200])

    # -- sessions and logins ---------------------------------------------------------------------
    async def session_of(self, request: web.Request) -> Session | None:
        """The request's live session, if its user is still in the config with that role: a
        user removed or demoted is logged out at once."""
        cookie = request.cookies.get(COOKIE)
        session = await self.run(self.archive.sessions.load, cookie)
        if session is None:
            return None
        known = self.settings.web.users.get(session.user)
        if known is None or known.role != session.role:
            await self.run(self.archive.sessions.end, cookie)
            return None
        return session

    async def login(self, request: web.Request, user: str, password: str) -> str | None:
        """A session cookie if the login is right. Always costs one scrypt (timing tells
        neither which users exist nor which attempts were refused); every failure is audited
        under the account's real role (archive/web/throttle.py says how attempts are limited)."""
        address = self.address(request)
        attempt = self.throttle.begin(address, user)  # counted before anything is awaited
        if attempt.delay_s:
            await asyncio.sleep(attempt.delay_s)
        known = self.settings.web.users.get(user)
        stored = known.password_hash.get_secret_value() if known else DUMMY_HASH
        checked = await self.run(verify_password, password, stored)
        role = known.role if known else "viewer"
        if attempt.refused or not checked or known is None:
            action = "login_throttled" if attempt.refused else "login_failed"
            detail = {"delay_s": attempt.delay_s} if attempt.delay_s else {}
            await self.run(self.archive.audit, Actor(user[:64], role, "web", address), action,
                           None, **detail)
            return None
        self.throttle.succeeded(attempt)
        _, cookie = await self.run(self.archive.sessions.new, user, known.role)
        await self.run(self.archive.audit, Actor(user, known.role, "web", address), "login",
                       None)
        return cookie

    async def logout(self, request: web.Request) -> None:
        await self.run(self.archive.sessions.end, request.cookies.get(COOKIE))
        await self.run(self.archive.audit, request[ACTOR], "logout", None)

    def token_actor(self, request: web.Request) -> Actor | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        digest = token_digest(header[7:].strip())
        for name, token in self.settings.web.tokens.items():
            if same(digest, token.sha256.get_secret_value()):
                return Actor(name, token.role, "api", self.address(request))
        return None

    def set_cookie(self, response: web.StreamResponse, cookie: str, name: str = COOKIE,
                   max_age: float | None = None) -> None:
        response.set_cookie(name, cookie, httponly=True, samesite="Strict", path="/",
                            secure=self.settings.web.cookie_secure,
                            max_age=int(max_age or self.settings.web.session_hours * 3600))
