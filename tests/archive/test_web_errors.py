"""A failing catalog (a locked or corrupt SQLite file) is a clear 503, never a bare 500."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from archive.catalog import CatalogError
from archive.service import Archive
from tests.helpers import DESK_TOKEN as TOKEN


async def test_a_failing_catalog_is_a_clear_503(
        web_client: tuple[TestClient[Any, Any], Archive], monkeypatch: pytest.MonkeyPatch) -> None:
    http, archive = web_client

    def broken(*args: object, **kwargs: object) -> None:
        raise CatalogError("database is locked")

    monkeypatch.setattr(archive.catalog, "search", broken)
    reply = await http.get("/api/calls", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 503
    assert (await reply.json())["error"].startswith("the call catalog is unavailable")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
