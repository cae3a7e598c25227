"""The archive's web UI (aiohttp, server-rendered, no JavaScript) and its JSON API (``api.py``).

Nothing is visible without a login (pages) or a token (API). Pages that change something are
POST forms carrying the session's CSRF token; the session cookie is HttpOnly, SameSite=Strict and
Secure unless ``web.cookie_secure`` is off (loopback demo only). The Content-Security-Policy
allows no script at all and media only from S3, where the audio player's presigned URL points.
Blocking work (SQLite, boto3, scrypt) runs in a thread pool so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from archive import ArchiveError
from archive.auth import DUMMY_HASH, same, token_digest, verify_password
from archive.catalog import CatalogError
from archive.config import ArchiveSettings
from archive.evidence.desk import EvidenceDesk, VerifyMetrics
from archive.evidence.web import EvidencePages, serve_metrics_app
from archive.front import Front
from archive.i18n import CODES, LANG_COOKIE, LANGUAGES, N_, Texts, choose, current_language
from archive.render import inert
from archive.service import Actor, Archive, Forbidden, Invalid, NotFound
from archive.sessions import Session, SessionStore
from archive.throttle import LoginThrottle
from archive.views import ACTOR, add_routes
from archive.web_query import BadQuery
from callrec.aio import first_of
from callrec.backoff import Backoff
from callrec.lifecycle import Stop, Tasks
from callrec.manifest import OUTCOMES

log = logging.getLogger(__name__)
T = TypeVar("T")
COOKIE = "callrec_session"
SESSION = web.RequestKey("session", Session)
PUBLIC = {"/login", "/style.css"}
DONE = {"outcome": N_("Outcome changed."), "hold": N_("Legal hold put on."),
        "release": N_("Legal hold released."), "review": N_("Marked reviewed."),
        "mark": N_("Caller marked: every callrec host applies it at their next call."),
        "unmark": N_("Caller unmarked.")}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


STATUS: dict[type[ArchiveError], int] = {Forbidden: 403, NotFound: 404, BadQuery: 400,
                                         Invalid: 400, CatalogError: 503}


class WebApp:
    def __init__(self, settings: ArchiveSettings, archive: Archive) -> None:
        self.settings = settings
        self.archive = archive
        self.sessions = SessionStore(archive.catalog, settings.web.session_hours,
                                     settings.web.idle_minutes)
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
        self.verify_metrics = VerifyMetrics()
        self.evidence = EvidencePages(self, EvidenceDesk(archive), self.verify_metrics)
        self.front = Front(settings.web)
        s3 = urlsplit(settings.s3.endpoint or f"https://s3.{settings.s3.region}.amazonaws.com")
        self.csp = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                    f"media-src 'self' {s3.scheme}://{s3.netloc}; form-action 'self'; "
                    "frame-ancestors 'none'; base-uri 'none'")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.headers, self.language, self.errors,
                                           self.authenticate],
                              client_max_size=64 << 10)
        add_routes(app, self)
        self.evidence.register(app)
        return app

    # -- middlewares -----------------------------------------------------------------------------
    @web.middleware
    async def headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        security = {
            "Content-Security-Policy": self.csp, "X-Content-Type-Options": "nosniff",
            # same-origin: S3 never sees our URLs; "no-referrer" would make Chromium send
            # "Origin: null" with our own forms, which the CSRF check must refuse.
            "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store"}
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and refusals carry them too
            exc.headers.update(security)
            raise
        response.headers.update(security)
        return response

    @web.middleware
    async def language(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The page's language (archive/i18n.py); ``?lang=ja`` keeps the choice in a cookie
        and shows the same page again without it."""
        chosen = request.query.get("lang", "")
        if chosen in CODES and request.method == "GET":
            session = await self.session_of(request)
            if session is not None:  # kept for the user too: their other browsers follow
                await self.run(self.sessions.set_language, session.user, chosen)
            rest = {k: v for k, v in request.query.items() if k != "lang"}
            again = web.HTTPSeeOther(request.path + (f"?{urlencode(rest)}" if rest else ""))
            again.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, httponly=True,
                             samesite="Strict", secure=self.settings.web.cookie_secure)
            raise again
        self.texts.use(choose(request.cookies.get(LANG_COOKIE),
                              request.headers.get("Accept-Language", "")))
        return await handler(request)

    @web.middleware
    async def errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every archive error becomes a clear page or JSON error: refused (403), unknown
        (404), a bad request (400), the catalog unavailable (503), S3 failing (502)."""
        try:
            return await handler(request)
        except ArchiveError as exc:
            # By kind, subclasses included (an unknown call's bundle is a NotFound: 404).
            status = next((STATUS[t] for t in type(exc).__mro__ if t in STATUS), 502)
            if isinstance(exc, BadQuery):
                await self.refused(request, "api" if request.path.startswith("/api/")
                                   else "web", "bad_request", request.get(ACTOR))
            if isinstance(exc, CatalogError):
                log.error("catalog: %s", exc)
                message = "the call catalog is unavailable; try again shortly"
            else:
                message = str(exc)
            return self.refusal(request, status, message)
        except web.HTTPException:
            raise
        except Exception:  # the last resort: a plain 500 (with the security headers), audited
            log.exception("%s %s failed", request.method, request.path[:200])
            await self.audit_error(request)
            return self.refusal(request, 500, "internal error; it has been logged")

    def refusal(self, request: web.Request, status: int, message: str) -> web.Response:
        if request.path.startswith("/api/"):
            return web.json_response({"error": message}, status=status)
        return self.page(request, "base.html", status=status, error=message)

    async def audit_error(self, request: web.Request) -> None:
        actor = request.get(ACTOR)
        try:
            await self.audit_request(request, "server_error", actor.via if actor else "web",
                                     actor)
        except ArchiveError as exc:  # the catalog may be what failed
            log.error("server error not audited: %s", exc)

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.front.host_ok(request):
            raise web.HTTPBadRequest(text="unknown host")
        if request.path in PUBLIC:
            return await handler(request)
        if request.path.startswith("/api/"):
            actor = self._token_actor(request)
            if actor is None:
                await self.refused(request, "api", "no_token" if "Authorization" not in
                                   request.headers else "bad_token")
                return web.json_response({"error": "a valid bearer token is required"},
                                         status=401, headers={"WWW-Authenticate": "Bearer"})
        else:
            session = await self.session_of(request)
            if session is None:
                await self.refused(request, "web", "no_session" if COOKIE not in
                                   request.cookies else "bad_session")
                raise web.HTTPSeeOther("/login")
            request[SESSION] = session
            actor = Actor(session.user, session.role, "web", self.address(request))
            if request.method == "POST":
                await self._check_csrf(request, session, actor)
        request[ACTOR] = actor
        return await handler(request)

    async def refused(self, request: web.Request, via: str, reason: str,
                      actor: Actor | None = None) -> None:
        """Every refusal is an audit row, with its reason (a refused login is one too)."""
        await self.audit_request(request, "refused", via, actor, reason=reason)

    async def audit_request(self, request: web.Request, action: str, via: str,
                            actor: Actor | None, **detail: str) -> None:
        """An audit row about a request, by its actor if it has one yet ("-" if not)."""
        await self.run(self.archive.catalog.audit, actor.name if actor else "-",
                       actor.role if actor else "viewer", via, action, None,
                       {**detail, "method": request.method, "path": request.path[:200]},
                       self.address(request))

    async def session_of(self, request: web.Request) -> Session | None:
        """The request's live session, if its user is still in the config with that role: a
        user removed or demoted is logged out at once."""
        cookie = request.cookies.get(COOKIE)
        session = await self.run(self.sessions.load, cookie)
        if session is None:
            return None
        known = self.settings.web.users.get(session.user)
        if known is None or known.role != session.role:
            await self.run(self.sessions.end, cookie)
            return None
        return session

    async def logout(self, request: web.Request) -> None:
        await self.run(self.sessions.end, request.cookies.get(COOKIE))
        actor = request[ACTOR]
        await self.run(self.archive.catalog.audit, actor.name, actor.role, "web", "logout",
                       None, {}, actor.address)

    def _token_actor(self, request: web.Request) -> Actor | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        digest = token_digest(header[7:].strip())
        for name, token in self.settings.web.tokens.items():
            if same(digest, token.sha256.get_secret_value()):
                return Actor(name, token.role, "api", self.address(request))
        return None

    async def _check_csrf(self, request: web.Request, session: Session, actor: Actor) -> None:
        origin = request.headers.get("Origin")
        if origin and origin != self.front.origin(request):
            await self.refused(request, "web", "cross_origin", actor)
            raise web.HTTPForbidden(text="cross-origin form refused")
        form = await request.post()
        if not same(str(form.get("csrf", "")), session.csrf):
            await self.refused(request, "web", "csrf", actor)
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")

    def address(self, request: web.Request) -> str:
        return self.front.address(request)

    # -- helpers ---------------------------------------------------------------------------------
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

    async def login(self, request: web.Request, user: str, password: str) -> str | None:
        """A session cookie if the login is right. Always costs one scrypt (timing tells
        neither which users exist nor which attempts were refused); every failure is audited
        under the account's real role (archive/throttle.py says how attempts are limited)."""
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
            await self.run(self.archive.catalog.audit, user[:64], role, "web", action, None,
                           {"delay_s": attempt.delay_s} if attempt.delay_s else {}, address)
            return None
        self.throttle.succeeded(attempt)
        _, cookie = await self.run(self.sessions.new, user, known.role)
        await self.run(self.archive.catalog.audit, user, known.role, "web", "login", None, {},
                       address)
        return cookie

    def set_cookie(self, response: web.StreamResponse, cookie: str, name: str = COOKIE,
                   max_age: float | None = None) -> None:
        response.set_cookie(name, cookie, httponly=True, samesite="Strict", path="/",
                            secure=self.settings.web.cookie_secure,
                            max_age=int(max_age or self.settings.web.session_hours * 3600))


class WebServer:
    """The archive web UI's lifecycle (callrec/lifecycle.py): startup -> run -> shutdown."""

    def __init__(self, settings: ArchiveSettings, archive: Archive) -> None:
        self.settings = settings
        self.webapp = WebApp(settings, archive)
        self.runner = web.AppRunner(self.webapp.app(), access_log=None)
        self.metrics_runner: web.AppRunner | None = None
        self.tasks = Tasks()

    async def startup(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.settings.web.host, self.settings.web.port)
        await site.start()
        port = self.runner.addresses[0][1] if self.runner.addresses else self.settings.web.port
        log.info("archive web UI on http://%s:%s/", self.settings.web.host, port)
        web_settings = self.settings.web
        if web_settings.metrics_port:
            self.metrics_runner = web.AppRunner(serve_metrics_app(self.webapp.verify_metrics),
                                                access_log=None)
            await self.metrics_runner.setup()
            await web.TCPSite(self.metrics_runner, web_settings.metrics_host,
                              web_settings.metrics_port).start()

    async def run(self, stop: Stop) -> None:
        if self.settings.web.sync_interval_s > 0:
            self.tasks.spawn(self._sync_loop(self.settings.web.sync_interval_s, stop))
        if self.settings.web.verify_interval_s > 0:
            self.tasks.spawn(self.webapp.evidence.schedule(self.settings.web.verify_interval_s,
                                                           stop))
        await stop.requested.wait()

    async def shutdown(self, stop: Stop) -> None:
        log.info("archive web UI stopping")
        # Requests in flight get the grace period (aiohttp waits for its handlers).
        await stop.within_grace(self.runner.cleanup())
        await self.tasks.cancel()
        await self.webapp.evidence.close()
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()
        self.webapp.pool.shutdown(wait=True)
        self.webapp.archive.close()

    async def _sync_loop(self, interval: float, stop: Stop) -> None:
        pauses = Backoff(first=interval, cap=max(interval, 600.0))
        while not stop.requested.is_set():
            try:
                await self.webapp.run(self.webapp.archive.sync)  # ships the audit rows too
                pauses.reset()
                delay = interval
            except ArchiveError as exc:
                delay = pauses.next()
                log.warning("catalog sync failed: %s; next try in %.0f s", exc, delay)
            await first_of(stop.requested.wait(), timeout=delay)
