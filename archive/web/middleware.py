"""The guards every request of the web UI and JSON API passes, outermost first: security headers,
the page's language, errors as clear pages (never a traceback), and authentication.

Nothing is visible without a login (pages) or a token (API). Pages that change something are
POST forms carrying the session's CSRF token; the session cookie is HttpOnly, SameSite=Strict and
Secure unless ``web.cookie_secure`` is off (loopback demo only). The Content-Security-Policy
allows no script at all and media only from S3, where the audio player's presigned URL points.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from archive import ArchiveError
from archive.auth import same
from archive.catalog import CatalogError
from archive.service import Actor, Forbidden, Invalid, NotFound
from archive.sessions import Session
from archive.web.app import ACTOR, COOKIE, SESSION, WebApp
from archive.web.i18n import CODES, LANG_COOKIE, choose
from archive.web.query import BadQuery

log = logging.getLogger(__name__)
PUBLIC = {"/login", "/style.css"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATUS: dict[type[ArchiveError], int] = {Forbidden: 403, NotFound: 404, BadQuery: 400,
                                         Invalid: 400, CatalogError: 503}


class Guards:
    def __init__(self, w: WebApp) -> None:
        self.w = w
        s3 = urlsplit(w.settings.s3.endpoint or
                      f"https://s3.{w.settings.s3.region}.amazonaws.com")
        self.csp = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                    f"media-src 'self' {s3.scheme}://{s3.netloc}; form-action 'self'; "
                    "frame-ancestors 'none'; base-uri 'none'")

    def all(self) -> list[Middleware]:
        return [self.headers, self.language, self.errors, self.authenticate]

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
        """The page's language (archive/web/i18n.py); ``?lang=ja`` keeps the choice in a
        cookie and shows the same page again without it."""
        chosen = request.query.get("lang", "")
        if chosen in CODES and request.method == "GET":
            session = await self.w.session_of(request)
            if session is not None:  # kept for the user too: their other browsers follow
                await self.w.run(self.w.archive.sessions.set_language, session.user, chosen)
            rest = {k: v for k, v in request.query.items() if k != "lang"}
            again = web.HTTPSeeOther(request.path + (f"?{urlencode(rest)}" if rest else ""))
            again.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, httponly=True,
                             samesite="Strict", secure=self.w.settings.web.cookie_secure)
            raise again
        self.w.texts.use(choose(request.cookies.get(LANG_COOKIE),
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
                await self.w.refused(request, "api" if request.path.startswith("/api/")
                                     else "web", "bad_request", request.get(ACTOR))
            if isinstance(exc, CatalogError):
                log.error("catalog: %s", exc)
                message = "the call catalog is unavailable; try again shortly"
            else:
                message = str(exc)
            return self.w.refusal(request, status, message)
        except web.HTTPException:
            raise
        except Exception:  # the last resort: a plain 500 (with the security headers), audited
            log.exception("%s %s failed", request.method, request.path[:200])
            await self.audit_error(request)
            return self.w.refusal(request, 500, "internal error; it has been logged")

    async def audit_error(self, request: web.Request) -> None:
        actor = request.get(ACTOR)
        try:
            await self.w.audit_request(request, "server_error", actor.via if actor else "web",
                                       actor)
        except ArchiveError as exc:  # the catalog may be what failed
            log.error("server error not audited: %s", exc)

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.w.front.host_ok(request):
            raise web.HTTPBadRequest(text="unknown host")
        if request.path in PUBLIC:
            return await handler(request)
        if request.path.startswith("/api/"):
            actor = self.w.token_actor(request)
            if actor is None:
                await self.w.refused(request, "api", "no_token" if "Authorization" not in
                                     request.headers else "bad_token")
                return web.json_response({"error": "a valid bearer token is required"},
                                         status=401, headers={"WWW-Authenticate": "Bearer"})
        else:
            session = await self.w.session_of(request)
            if session is None:
                await self.w.refused(request, "web", "no_session" if COOKIE not in
                                     request.cookies else "bad_session")
                raise web.HTTPSeeOther("/login")
            request[SESSION] = session
            actor = Actor(session.user, session.role, "web", self.w.address(request))
            if request.method == "POST":
                await self._check_csrf(request, session, actor)
        request[ACTOR] = actor
        return await handler(request)

    async def _check_csrf(self, request: web.Request, session: Session, actor: Actor) -> None:
        origin = request.headers.get("Origin")
        if origin and origin != self.w.front.origin(request):
            await self.w.refused(request, "web", "cross_origin", actor)
            raise web.HTTPForbidden(text="cross-origin form refused")
        form = await request.post()
        if not same(str(form.get("csrf", "")), session.csrf):
            await self.w.refused(request, "web", "csrf", actor)
            raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")
