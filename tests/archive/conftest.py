"""Archive fixtures: calls archived by the real uploader into a fresh Object-Lock bucket of the
bench's SeaweedFS, and archive settings (catalog in tmp) pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from archive.auth import hash_password
from archive.config import ArchiveSettings
from archive.service import Archive
from archive.web.app import WebApp
from archive.web.server import application
from testbench.endpoints import Endpoints
from tests.helpers import (
    PASSWORDS,
    Login,
    Ship,
    archive_settings,
    login_token,
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
    async def run(feed: bool = False, **upload: Any) -> list[str]:
        """``upload``: [upload] settings of this uploader (``format="opus"``)."""
        archive = Archive(settings) if feed else None
        uploader = Uploader(uploader_settings(settings, **upload),
                            feed=archive.catalogue if archive is not None else None)
        try:
            summary = await uploader.drain()
        finally:
            uploader.close()
            if archive is not None:
                archive.close()
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
    async with TestClient(TestServer(application(webapp))) as client:
        yield client, archive
    webapp.pool.shutdown(wait=True)
    archive.close()


@pytest_asyncio.fixture
async def served(settings: ArchiveSettings, archive: Archive) -> AsyncIterator[str]:
    webapp = WebApp(settings, archive)
    runner = web.AppRunner(application(webapp))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        webapp.pool.shutdown(wait=True)


@pytest_asyncio.fixture
async def login(served: str) -> AsyncIterator[Login]:
    sessions: list[aiohttp.ClientSession] = []

    async def as_user(user: str) -> aiohttp.ClientSession:
        # unsafe: the jar keeps cookies of an IP address host (127.0.0.1).
        session = aiohttp.ClientSession(base_url=served, cookie_jar=aiohttp.CookieJar(
            unsafe=True))
        sessions.append(session)
        token = await login_token(session)
        async with session.post("/login", data={"user": user, "password": PASSWORDS[user],
                                                "csrf": token},
                                allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        return session

    yield as_user
    for session in sessions:
        await session.close()
