"""Web sessions kept on the server, so that a logout, a user removed from the config or a role
changed in it take effect at once, and an idle session ends.

The cookie holds only a random id (256 bits); the catalog keeps its SHA-256 (a copy of
the database gives no session), the user, the role, the CSRF token, and when it began and was
last used. A session ends ``session_hours`` after the login, or ``idle_minutes`` after its last
request. Sessions are per archive server (its catalog); several servers behind one name need
sticky sessions.

Why not aio-libs' aiohttp-session: its server-side stores are Redis and Memcached, a server the
archive does not otherwise need; its cookie store is what callrec had (a signed cookie cannot
be revoked). The archive already keeps its state in its catalog; this is one table there.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from archive.catalog import Catalog, SessionRow
from archive.config import ROLES, Role

TOUCH_S = 30.0  # last_seen is written at most this often per session (one write per request
# would serialise every page view on the database)


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    expires: float  # the absolute end; the idle end may come first
    csrf: str
    lang: str | None = None  # the language the user picked (on any browser), if any


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()


class SessionStore:
    def __init__(self, catalog: Catalog, hours: float, idle_minutes: float) -> None:
        self.catalog = catalog
        self.seconds, self.idle_s = hours * 3600, idle_minutes * 60

    def new(self, user: str, role: Role) -> tuple[Session, str]:
        cookie, now = secrets.token_urlsafe(32), time.time()
        session = Session(user, role, now + self.seconds, secrets.token_urlsafe(24))
        self.catalog.session_add(SessionRow(_key(cookie), user, role, session.csrf, now, now),
                                 now - self.seconds, now - self.idle_s)
        return session, cookie

    def load(self, cookie: str | None) -> Session | None:
        """The live session of this cookie (its idle clock restarted), or None."""
        if not cookie or len(cookie) > 128:
            return None
        key, now = _key(cookie), time.time()
        row = self.catalog.session_get(key)
        if row is None:
            return None
        if row.started + self.seconds < now or row.last_seen + self.idle_s < now or \
                row.role not in ROLES:
            self.end(cookie)
            return None
        if now - row.last_seen > TOUCH_S:
            self.catalog.session_touch(key, now)
        return Session(row.user, row.role, row.started + self.seconds, row.csrf, row.lang)

    def set_language(self, user: str, lang: str) -> None:
        self.catalog.set_language(user, lang)

    def end(self, cookie: str | None) -> None:
        if cookie:
            self.catalog.session_drop(_key(cookie))
