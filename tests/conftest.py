"""Shared fixtures: the real bench (Asterisk chroot, SeaweedFS, SIPp), started once per session.

If the bench cannot start, every test that needs it fails with the reason; nothing is skipped.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
import pytest_asyncio

from archive.catalog.postgres import PostgresCatalog
from archive.catalog.sql import SqlCatalog
from archive.catalog.sqlite import SQLiteCatalog
from callrec.manifest import CallManifest
from callrec.numbering import NumberingPlan
from testbench import BenchError
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.chroot import cache_dir
from testbench.endpoints import Endpoints
from testbench.postgres import Postgres
from testbench.procs import free_port
from testbench.s3 import create_locked_bucket, s3_client
from testbench.sipp import Caller
from tests.helpers import StartApp

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@contextmanager
def running(start: Callable[[], object], stop: Callable[[], object], what: str) -> Iterator[None]:
    """A session's server: a start that fails fails every test that needs it, with the
    reason (nothing is skipped); stopped after the last."""
    try:
        start()
    except BenchError as exc:
        stop()
        pytest.fail(f"{what} could not start: {exc}", pytrace=False)
    try:
        yield
    finally:
        stop()


@pytest.fixture(scope="session")
def bench() -> Iterator[Bench]:
    bench = Bench("test")
    with running(bench.up, bench.down, "the test bench"):
        yield bench


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session (testbench/postgres.py); a database per test."""
    server = Postgres(cache_dir() / "postgres" / uuid.uuid4().hex[:8], free_port())
    with running(server.start, server.stop, "PostgreSQL"):
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCatalog]:
    """The catalog's tests run on both backends, the same tests."""
    if request.param == "sqlite":
        found: SqlCatalog = SQLiteCatalog(tmp_path / "c.sqlite3", NumberingPlan())
    else:
        pg = PostgresCatalog(request.getfixturevalue("postgres").database(), NumberingPlan())
        pg.migrate()
        found = pg
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="session")
def endpoints(bench: Bench) -> Endpoints:
    assert bench.endpoints is not None
    return bench.endpoints


@pytest.fixture(scope="session")
def caller(bench: Bench) -> Caller:
    return bench.caller()


@pytest.fixture(scope="session")
def s3(endpoints: Endpoints) -> Iterator[S3Client]:
    client = s3_client(endpoints.s3_endpoint, endpoints.s3)
    yield client
    client.close()


@pytest.fixture
def locked_bucket(s3: S3Client) -> str:
    """A fresh bucket with Object Lock enabled (objects in it are never deleted by teardown:
    COMPLIANCE retention forbids it; the run's data dir goes away with the bench)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    create_locked_bucket(s3, name)
    return name


@pytest.fixture
def unique_caller() -> Callable[[], str]:
    """Caller numbers unique to a test, so its calls can be told apart in shared phone logs."""
    return lambda: "0" + str(uuid.uuid4().int)[:10]


@pytest_asyncio.fixture
async def ari(endpoints: Endpoints) -> AsyncIterator[aiohttp.ClientSession]:
    # Credentials in the Authorization header, never in the URL (no api_key=).
    auth = aiohttp.encode_basic_auth(endpoints.asterisk.ari_user, endpoints.asterisk.ari_password)
    headers = {"Authorization": auth}
    async with aiohttp.ClientSession(base_url=endpoints.ari_url, headers=headers) as session:
        yield session


@pytest.fixture
def start_callrec(bench: Bench) -> Iterator[StartApp]:
    """Factory: start ``callrec ari`` with optional CALLREC_* overrides; stopped after the test."""
    started: list[CallrecApp] = []

    def start(**overrides: str) -> CallrecApp:
        # DEBUG: tests read the per-step lines (the notice played or not) from the app's log.
        app = bench.start_callrec(**{"CALLREC_LOG_LEVEL": "DEBUG", **overrides})
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def callrec(start_callrec: StartApp) -> CallrecApp:
    return start_callrec()


@pytest.fixture
def manifests(bench: Bench) -> Callable[..., list[CallManifest]]:
    """Manifests whose raw caller number is ``number``, waiting up to ``timeout`` s for
    ``count`` of them (then a moment more, to catch a duplicate)."""
    assert bench.asterisk is not None
    spool: Path = bench.asterisk.recordings

    def find(number: str, count: int = 1, timeout: float = 20.0) -> list[CallManifest]:
        deadline = time.monotonic() + timeout
        found: list[CallManifest] = []
        while time.monotonic() < deadline:
            found = [m for m in map(CallManifest.read, spool.glob("*.json"))
                     if m.caller.number_raw == number]
            if len(found) >= count:
                time.sleep(0.5)
                return [m for m in map(CallManifest.read, spool.glob("*.json"))
                        if m.caller.number_raw == number]
            time.sleep(0.1)
        raise AssertionError(f"{len(found)} manifest(s) for {number!r}, wanted {count}; spool: "
                             + json.dumps(sorted(p.name for p in spool.iterdir())[-10:]))

    return find
