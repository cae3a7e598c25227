"""Passwords, API tokens and session cookies of the web UI.

Passwords: scrypt (hashlib, OpenSSL's) with n=2**15, r=8, p=1 and a 16-byte salt: memory-hard,
about 50 ms per check. API tokens are 256-bit random strings; only their SHA-256 sits in the
config. Web sessions are kept on the server (archive/sessions.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

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
