"""Web sessions kept on the server, so that a logout, a user removed from the config or a role
changed in it take effect at once, and an idle session ends.

The cookie holds only a random id (256 bits); the catalog's SQLite keeps its SHA-256 (a copy of
the database gives no session), the user, the role, the CSRF token, and when it began and was
last used. A session ends ``session_hours`` after the login, or ``idle_minutes`` after its last
request. Sessions are per archive server (its catalog); several servers behind one name need
sticky sessions.

Why not aio-libs' aiohttp-session: its server-side stores are Redis and Memcached, a server the
archive does not otherwise need; its cookie store is what callrec had (a signed cookie cannot
be revoked). The archive already keeps its state in SQLite; this is one table.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass

from archive.catalog import Catalog, CatalogError
from archive.config import ROLES, Role

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_sessions (
    id_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL,
    started REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS web_languages (user TEXT PRIMARY KEY, lang TEXT NOT NULL);
"""
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
        try:
            with catalog.lock:
                catalog.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog {catalog.path}: {exc}") from exc

    def new(self, user: str, role: Role) -> tuple[Session, str]:
        cookie, now = secrets.token_urlsafe(32), time.time()
        session = Session(user, role, now + self.seconds, secrets.token_urlsafe(24))
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM web_sessions WHERE started < ? OR last_seen < ?",
                       (now - self.seconds, now - self.idle_s))  # ended ones go as new begin
            db.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?, ?)",
                       (_key(cookie), user, role, session.csrf, now, now))
        return session, cookie

    def load(self, cookie: str | None) -> Session | None:
        """The live session of this cookie (its idle clock restarted), or None."""
        if not cookie or len(cookie) > 128:
            return None
        key, now = _key(cookie), time.time()
        try:
            with self.catalog.lock:  # a read: no write transaction for every page view
                row = self.catalog.db.execute(
                    "SELECT user, role, csrf, started, last_seen, (SELECT lang FROM "
                    "web_languages l WHERE l.user = s.user) FROM web_sessions s "
                    "WHERE id_sha256 = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise CatalogError(f"catalog {self.catalog.path}: {exc}") from exc
        if row is None:
            return None
        user, role, csrf, started, last_seen, lang = row
        if started + self.seconds < now or last_seen + self.idle_s < now or role not in ROLES:
            self.end(cookie)
            return None
        if now - last_seen > TOUCH_S:
            with self.catalog.transaction() as db:
                db.execute("UPDATE web_sessions SET last_seen = ? WHERE id_sha256 = ?",
                           (now, key))
        return Session(user, role, started + self.seconds, csrf, lang)

    def set_language(self, user: str, lang: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO web_languages VALUES (?, ?)", (user, lang))

    def end(self, cookie: str | None) -> None:
        if cookie:
            with self.catalog.transaction() as db:
                db.execute("DELETE FROM web_sessions WHERE id_sha256 = ?", (_key(cookie),))
