"""Evidence in the web UI, served for real over the archive in SeaweedFS: a supervisor exports
a call's bundle from its page, an admin verifies the archive; viewers may do neither."""

from __future__ import annotations

import asyncio
import re
import zipfile
from pathlib import Path

import pytest

from archive.config import ArchiveSettings
from archive.evidence.bundle_check import verify_bundle
from archive.service import Archive
from callrec.evidence.chain import SpoolWriter
from callrec.manifest import CallManifest
from callrec.s3.store import Store
from testbench.spool import varied_call
from tests.helpers import Login, Ship, csrf_of
from uploader.evidence import Checkpointer

pytestmark = pytest.mark.integration


@pytest.fixture
async def sealed(settings: ArchiveSettings, ship: Ship, archive: Archive) -> CallManifest:
    """A call sealed as callrec ari would (key and chain of the test's host), shipped, its
    chain checkpointed as the uploader daemon does, and in the catalog."""
    spool = settings.archive.spool
    assert spool is not None
    m = varied_call(spool, caller_raw="0355556666", name="<b>x</b>")
    SpoolWriter(spool, settings.evidence).write(m)
    await ship()
    store = Store(settings.s3)
    try:
        assert Checkpointer(store, settings.evidence, spool).tick() is not None
    finally:
        store.close()
    archive.sync()
    return m


async def test_a_supervisor_exports_and_an_admin_verifies(
        login: Login, sealed: CallManifest, tmp_path: Path) -> None:
    viewer, supervisor, admin = await login("viewer"), await login("supervisor"), \
        await login("admin")
    page = f"/calls/{sealed.call_id}"
    async with viewer.get(page) as r:
        assert 'id="export-evidence"' not in await r.text()
    async with viewer.post(page + "/evidence", data={"csrf": await csrf_of(viewer, page)},
                           allow_redirects=False) as r:
        assert r.status == 403

    async with supervisor.get(page) as r:
        assert 'id="export-evidence"' in await r.text()
    unknown = "/calls/20200101T000000Z-000000000000"
    async with supervisor.post(unknown + "/evidence",
                               data={"csrf": await csrf_of(supervisor, page)}) as r:
        assert r.status == 404  # a clear "not archived", never a 500
    async with supervisor.post(page + "/evidence",
                               data={"csrf": await csrf_of(supervisor, page)}) as r:
        assert r.status == 200 and r.content_type == "application/zip"
        assert f"evidence-{sealed.call_id}.zip" in r.headers["Content-Disposition"]
        bundle = tmp_path / "case.zip"
        bundle.write_bytes(await r.read())
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    with zipfile.ZipFile(bundle) as zf:
        assert f"calls/{sealed.call_id}/recording.wav" in zf.namelist()

    async with supervisor.get("/admin/evidence") as r:
        assert r.status == 403
    async with admin.post("/admin/evidence/verify",
                          data={"csrf": await csrf_of(admin, "/admin/evidence")}) as r:
        assert r.status == 200  # back on the page
    for _ in range(100):
        async with admin.get("/admin/evidence") as r:
            text = await r.text()
        if 'id="verify-result"' in text:
            break
        await asyncio.sleep(0.1)
    assert re.search(r'id="verify-result" class="ok"', text), text
    async with admin.get("/audit?action=evidence") as r:
        assert sealed.call_id in await r.text()
