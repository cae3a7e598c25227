"""Passwords, API tokens and session cookies of the web UI.

Passwords: scrypt (hashlib, OpenSSL's) with n=2**15, r=8, p=1 and a 16-byte salt: memory-hard,
about 50 ms per check. API tokens are 256-bit random strings; only their SHA-256 sits in the
config. Sessions are signed cookies (HMAC-SHA256) holding the user, role, expiry and the CSRF
token, so several archive servers with the same secret share logins and nothing is kept server
side; a role change in the config takes effect at the next login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from archive.config import ROLES, Role

_N, _R, _P = 2 ** 15, 8, 1
_MAXMEM = 64 << 20


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=_MAXMEM)
    except ValueError:
        return False
    return hmac.compare_digest(got, _unb64(key))


# A password check for unknown users too, so response time does not tell which names exist.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def same(a: str, b: str) -> bool:
    """Constant-time equality of two texts from anywhere (compare_digest refuses non-ASCII
    str: a cookie or form field from the network may hold anything)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"),
                               b.encode("utf-8", "surrogateescape"))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    expires: float
    csrf: str


class Sessions:
    def __init__(self, secret: bytes, hours: float) -> None:
        self.secret = secret
        self.seconds = hours * 3600

    def new(self, user: str, role: Role) -> tuple[Session, str]:
        session = Session(user, role, time.time() + self.seconds, secrets.token_urlsafe(24))
        payload = _b64(json.dumps([session.user, session.role, session.expires,
                                   session.csrf]).encode())
        return session, f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())

    def load(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not same(signature, self._sign(payload)):
            return None
        try:
            user, role, expires, csrf = json.loads(_unb64(payload))
        except (ValueError, TypeError, RecursionError):
            return None
        if role not in ROLES or not isinstance(expires, float | int) or expires < time.time():
            return None
        return Session(str(user), role, float(expires), str(csrf))
