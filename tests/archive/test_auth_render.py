"""Passwords, session cookies and inert rendering, on their own."""

from __future__ import annotations

import time

from archive.auth import Sessions, hash_password, token_digest, verify_password
from archive.render import csv_cell, inert


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsE", first)
    assert not verify_password("x", "md5$whatever") and not verify_password("x", "garbage")


def test_session_cookies_cannot_be_forged_or_outlive_their_time() -> None:
    sessions = Sessions(b"k" * 32, hours=1)
    session, cookie = sessions.new("alice", "viewer")
    assert sessions.load(cookie) == session
    payload, signature = cookie.rsplit(".", 1)
    forged = Sessions(b"other" * 8, hours=1).new("alice", "admin")[1]
    assert sessions.load(forged) is None
    assert sessions.load(payload + "." + signature[::-1]) is None
    assert sessions.load(None) is None and sessions.load("nodot") is None
    expired = Sessions(b"k" * 32, hours=-1).new("alice", "viewer")[1]
    assert sessions.load(expired) is None
    assert session.expires > time.time()


def test_tokens_are_stored_as_digests() -> None:
    assert token_digest("t") == token_digest("t") != token_digest("u")
    assert len(token_digest("t")) == 64


def test_inert_text_everywhere() -> None:
    assert inert("a\u202eb\x1b[2Jc\u200bd e") == "a\\u202eb\\x1b[2Jc\\u200bd e"
    assert inert("山田 太郎") == "山田 太郎"
    assert csv_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert csv_cell("+81312345678") == "'+81312345678"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell(None) == ""
    assert csv_cell("plain") == "plain"
