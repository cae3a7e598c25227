"""Archive fixtures: calls archived by the real uploader into a fresh Object-Lock bucket of the
bench's SeaweedFS, and archive settings (catalog in tmp) pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from archive.auth import hash_password
from archive.catalog import Catalog
from archive.config import ArchiveSettings
from archive.service import Archive
from archive.web import WebApp
from testbench.bench import Endpoints
from tests.helpers import (
    PASSWORDS,
    Ship,
    archive_settings,
    offline_archive_settings,
    uploader_settings,
)
from uploader.service import Uploader


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    return {name: hash_password(pw) for name, pw in PASSWORDS.items()}


@pytest.fixture
def settings(endpoints: Endpoints, locked_bucket: str, tmp_path: Path,
             password_hashes: dict[str, str]) -> ArchiveSettings:
    return archive_settings(endpoints, locked_bucket, tmp_path, password_hashes)


@pytest.fixture
def ship(settings: ArchiveSettings) -> Ship:
    """Archive everything in the test's spool with the real uploader (await it); with
    ``feed=True`` it tells the archive's catalog of each call, as ``callrec upload`` does when
    ``upload.catalog`` is set (callrec_cli/main.py)."""
    async def run(feed: bool = False) -> list[str]:
        catalog = Catalog(settings.archive.catalog, settings.numbering) if feed else None
        uploader = Uploader(uploader_settings(settings),
                            feed=catalog.add if catalog is not None else None)
        try:
            summary = await uploader.drain()
        finally:
            uploader.close()
            if catalog is not None:
                catalog.close()
        assert not summary.failed and not summary.quarantined, summary
        return summary.shipped

    return run


@pytest.fixture
def archive(settings: ArchiveSettings) -> Iterator[Archive]:
    archive = Archive(settings)
    yield archive
    archive.close()


@pytest.fixture
async def web_client(tmp_path: Path, password_hashes: dict[str, str],
                     ) -> AsyncIterator[tuple[TestClient[Any, Any], Archive]]:
    """The web app in-process on an empty catalog, with user sato (supervisor, password
    WEB_PASSWORD) and the API token DESK_TOKEN."""
    settings = offline_archive_settings(tmp_path, password_hashes["supervisor"])
    archive = Archive(settings)
    webapp = WebApp(settings, archive)
    async with TestClient(TestServer(webapp.app())) as client:
        yield client, archive
    webapp.pool.shutdown(wait=True)
    archive.close()
