"""Passwords, session cookies and inert rendering, on their own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from archive.auth import hash_password, token_digest, verify_password
from archive.catalog.sqlite import SQLiteCatalog
from archive.render import csv_cell, inert
from archive.sessions import SessionStore
from callrec.numbering import NumberingPlan


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsE", first)
    assert not verify_password("x", "md5$whatever") and not verify_password("x", "garbage")


def test_sessions_are_kept_on_the_server_and_can_end(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = SQLiteCatalog(tmp_path / "c.sqlite3", NumberingPlan())
    sessions = SessionStore(catalog, hours=1, idle_minutes=10)
    session, cookie = sessions.new("alice", "viewer")
    assert sessions.load(cookie) == session and session.expires > time.time()
    assert sessions.load(cookie[:-1] + "x") is None and sessions.load(None) is None
    assert sessions.load("\u00e9" * 200) is None
    stored = catalog.db.execute("SELECT id_sha256 FROM web_sessions").fetchall()
    assert cookie not in str(stored)  # only its digest is kept
    sessions.end(cookie)
    assert sessions.load(cookie) is None  # logged out: the cookie is worth nothing
    idle, cookie = sessions.new("bob", "viewer")
    later = time.time() + 11 * 60
    monkeypatch.setattr("archive.sessions.time.time", lambda: later)
    assert sessions.load(cookie) is None  # idle for 11 minutes
    catalog.close()


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
