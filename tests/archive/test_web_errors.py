"""A failing catalog (a locked or corrupt SQLite file) is a clear 503, never a bare 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from archive.auth import token_digest
from archive.catalog import CatalogError
from archive.config import ArchiveSettings, CatalogSettings, Token, WebSettings
from archive.service import Archive
from archive.web import WebApp
from callrec.s3.settings import S3Settings

TOKEN = "desk-token-" + "z" * 30


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Archive]]:
    settings = ArchiveSettings(
        s3=S3Settings(endpoint="http://127.0.0.1:9", access_key="k", secret_key="s"),
        archive=CatalogSettings(catalog=tmp_path / "catalog.sqlite3"),
        web=WebSettings(cookie_secure=False, sync_interval_s=0, session_secret="s" * 32,
                        tokens={"desk": Token(role="supervisor", sha256=token_digest(TOKEN))}))
    archive = Archive(settings)
    webapp = WebApp(settings, archive)
    async with TestClient(TestServer(webapp.app())) as client:
        yield client, archive
    webapp.pool.shutdown(wait=True)
    archive.close()


async def test_a_failing_catalog_is_a_clear_503(
        client: tuple[TestClient[Any, Any], Archive], monkeypatch: pytest.MonkeyPatch) -> None:
    http, archive = client

    def broken(*args: object, **kwargs: object) -> None:
        raise CatalogError("database is locked")

    monkeypatch.setattr(archive.catalog, "search", broken)
    reply = await http.get("/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 503
    assert (await reply.json())["error"].startswith("the call catalog is unavailable")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
