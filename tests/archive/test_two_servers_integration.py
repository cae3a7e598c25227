"""Two archive servers on one PostgreSQL catalog behind the bench's nginx (the shipped server
block, with an upstream group): a supervisor logged in through one is recognised by the other,
a hold made on one shows on the other at once, both servers' audit rows are in one order."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from ipaddress import ip_network
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from archive.catalog.postgres import PostgresCatalog
from archive.config import ArchiveSettings
from callrec.numbering import NumberingPlan
from testbench import tlsproxy
from testbench.postgres import Postgres
from testbench.procs import free_port
from testbench.spool import varied_call
from tests.helpers import PASSWORDS, Ship, archive_server, csrf_of, login_token

pytestmark = pytest.mark.integration


def served_by(access_log: Path, path: str, status: int = 200) -> list[str]:
    """The upstream (archive server) of each ``status`` answer to ``path``, in order."""
    return [m.group(1) for m in re.finditer(rf"^{status} \S+ {re.escape(path)} (\S+)$",
                                            access_log.read_text(), re.M)]


async def test_two_archive_servers_share_logins_holds_and_audit(
        settings: ArchiveSettings, ship: Ship, postgres: Postgres, tmp_path: Path) -> None:
    dsn = postgres.database()
    setup = PostgresCatalog(dsn, NumberingPlan())
    setup.migrate()
    setup.close()
    port = free_port()
    settings.archive.database = SecretStr(dsn)
    settings.web.public_url, settings.web.cookie_secure = f"https://127.0.0.1:{port}", True
    settings.web.trusted_proxies = [ip_network(f"{tlsproxy.PROXY_IP}/32")]
    assert settings.archive.spool is not None
    call = varied_call(settings.archive.spool, caller_raw="0322223333")
    await ship(feed=True)  # catalogued in the shared database by the uploader's feed
    async with AsyncExitStack() as stack:
        (one, p1), (_, p2) = [await stack.enter_async_context(archive_server(
            settings.model_copy(deep=True, update={"archive": settings.archive.model_copy(
                update={"host_id": name})}))) for name in ("web1", "web2")]
        proxy = tlsproxy.start(tmp_path / "nginx", port, [p1, p2])
        stack.callback(proxy.stop)
        session = await stack.enter_async_context(aiohttp.ClientSession(
            base_url=settings.web.public_url, cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(ssl=False)))
        token = await login_token(session)
        async with session.post("/login", data={"user": "supervisor", "csrf": token,
                                                "password": PASSWORDS["supervisor"]},
                                allow_redirects=False) as r:
            assert r.status == 303
        page = f"/calls/{call.call_id}"
        for _ in range(4):  # nginx takes turns: each server serves the one login
            async with session.get(page, allow_redirects=False) as r:
                assert r.status == 200, r.headers.get("Location")
        log = tmp_path / "nginx/access.log"
        assert set(served_by(log, page)) == {f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"}
        # A hold through one server; the next page, from the other, shows it.
        csrf = await csrf_of(session, page)
        async with session.post(page + "/hold", data={"csrf": csrf},
                                allow_redirects=False) as r:
            assert r.status == 303
        [holder] = served_by(log, page + "/hold", 303)
        async with session.get(page) as r:
            assert 'id="hold">ON' in await r.text()
        assert served_by(log, page)[-1] != holder
        rows = one.catalog.audit_rows()
        assert [r.id for r in rows] == sorted(r.id for r in rows)
        assert [r.at for r in rows] == sorted(r.at for r in rows)
        assert {"login", "view", "hold"} <= {r.action for r in rows}
