"""A real browser on the archive, through the deployment docs/admin.md recommends (nginx ending TLS,
deploy/nginx-callrec-archive.conf): Debian's Chromium driven by Playwright logs in, searches by
the caller of a real SIPp call recorded by callrec and archived by the uploader, plays the
recording, and sets the outcome; the object's S3 tags change, and the audit log has the
browser's address as nginx passed it, not nginx's."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, Page, async_playwright

from archive.config import ArchiveSettings
from archive.service import Actor, Archive
from archive.web.app import WebApp
from archive.web.server import application
from callrec.manifest import AudioFormat, CallManifest, EventKind
from testbench import tlsproxy
from testbench.bench import Bench
from testbench.procs import free_port
from testbench.sipp import Caller
from testbench.spool import varied_call
from tests.helpers import PASSWORDS, Ship, StartApp, archive_server, call_with_keys

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
ADMIN = Actor("tester", "admin", "cli")
CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in CI); no calls home: the machine reaches no such hosts, and Chromium keeps
# retrying them (../shared/notes/test-bench.md).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
DURATION_JS = """() => new Promise(resolve => {
  const a = document.getElementById('player');
  if (a.readyState >= 1) { resolve(a.duration); return; }
  a.addEventListener('loadedmetadata', () => resolve(a.duration));
  a.addEventListener('error', () => resolve(-1));
})"""


@pytest.mark.timeout(180)
async def test_browser_finds_plays_and_reclassifies_a_real_call(
    bench: Bench, caller: Caller, start_callrec: StartApp,
    manifests: Callable[..., list[CallManifest]], unique_caller: Callable[[], str],
    settings: ArchiveSettings, ship: Ship, s3: S3Client, tmp_path: Path,
) -> None:
    assert bench.asterisk is not None
    settings.archive.spool = bench.asterisk.recordings  # the real call's spool
    start_callrec()
    number = unique_caller()
    await asyncio.to_thread(caller.call, "9001", hold_s=6.0, caller_user=number)
    [m] = await asyncio.to_thread(manifests, number)
    assert m.recording is not None and m.recording.duration_s
    await ship()
    port = free_port()
    settings.web.public_url, settings.web.cookie_secure = f"https://127.0.0.1:{port}", True
    settings.web.trusted_proxies = [ip_network(f"{tlsproxy.PROXY_IP}/32")]
    archive = Archive(settings)
    webapp = WebApp(settings, archive)
    runner = web.AppRunner(application(webapp))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = settings.web.public_url
    proxy = tlsproxy.start(tmp_path / "nginx", port, runner.addresses[0][1])
    try:
        await asyncio.to_thread(archive.sync)
        # ignore_https_errors: the fixture's self-signed certificate
        async with chromium(ignore_https_errors=True) as browser:
            page = await browser.new_page()
            await page.goto(base + "/calls")  # redirected to the login
            assert page.url == base + "/login"
            await page.fill("input[name=user]", "supervisor")
            await page.fill("input[name=password]", PASSWORDS["supervisor"])
            await page.click("button[type=submit]")
            await page.fill("input[name=caller]", number)
            await page.click("form.search button[type=submit]")
            await page.click(f"a[href='/calls/{m.call_id}']")
            assert await page.inner_text("#caller") == number
            duration = await page.evaluate(DURATION_JS)
            assert abs(duration - m.recording.duration_s) < 0.5, duration
            await page.evaluate("() => document.getElementById('player').play()")
            await page.wait_for_function(
                "() => document.getElementById('player').currentTime > 0.2")
            await page.fill("input[name=outcome]", "complaint")
            await page.click("text=Set outcome")
            assert await page.inner_text("#outcome") == "complaint"
            await page.screenshot(path=str(bench.log_dir / "archive-call-page.png"),
                                  full_page=True)
        rows = archive.catalog.audit_rows()
        audited = {(r.actor, r.action, r.call_id) for r in rows}
        assert {("supervisor", a, m.call_id) for a in ("view", "play", "outcome")} <= audited
        # The browser's address as nginx passed it on, not nginx's own.
        assert {r.address for r in rows if r.actor == "supervisor"} == {"127.0.0.1"}
        await forged_forwarding_is_ignored(runner.addresses[0][1], port, archive)
    finally:
        proxy.stop()
        await runner.cleanup()
        webapp.pool.shutdown(wait=True)
        archive.close()
    key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.wav"
    tags = {t["Key"]: t["Value"] for t in
            s3.get_object_tagging(Bucket=settings.s3.bucket, Key=key)["TagSet"]}
    assert tags["outcome"] == "complaint"


@pytest.mark.timeout(180)
async def test_browser_plays_a_stereo_call_archived_as_opus(
    bench: Bench, caller: Caller, start_callrec: StartApp,
    manifests: Callable[..., list[CallManifest]], unique_caller: Callable[[], str],
    settings: ArchiveSettings, ship: Ship,
) -> None:
    """The uploader archived the call as Ogg Opus (two uncoupled mono streams: mapping family
    255); Chromium's player loads it at the recording's length, as audio/ogg, and plays it."""
    assert bench.asterisk is not None
    settings.archive.spool = bench.asterisk.recordings
    start_callrec(CALLREC_RECORDING__STEREO="true", CALLREC_RECORDING__STEREO_ON_8K_ONLY_PBX="true")
    number = unique_caller()
    await asyncio.to_thread(caller.call, "9001", hold_s=6.0, caller_user=number)
    [m] = await asyncio.to_thread(manifests, number)
    assert m.recording is not None and m.recording.duration_s
    await ship(format=AudioFormat.OPUS)
    async with served(settings) as (archive, base):
        await asyncio.to_thread(archive.sync)
        async with chromium() as browser:
            page = await browser.new_page()
            types: list[str] = []
            page.on("response", lambda r: types.append(r.headers.get("content-type", "")))
            await log_in(page, base)
            await page.goto(base + f"/calls/{m.call_id}")
            duration = await page.evaluate(DURATION_JS)
            assert abs(duration - m.recording.duration_s) < 0.1, duration
            await page.evaluate("() => document.getElementById('player').play()")
            await page.wait_for_function(
                "() => document.getElementById('player').currentTime > 0.5")
            assert "audio/ogg" in types


@pytest.mark.timeout(180)
async def test_the_call_page_shows_a_payment_pause_in_japanese(
    bench: Bench, caller: Caller, start_callrec: StartApp,
    manifests: Callable[..., list[CallManifest]], unique_caller: Callable[[], str],
    settings: ArchiveSettings, ship: Ship,
) -> None:
    """A real call the agent paused (*5) and resumed (*6): the call page draws the paused span
    under the player where the manifest places it, and lists it in Japanese."""
    assert bench.asterisk is not None
    settings.archive.spool = bench.asterisk.recordings
    start_callrec()
    m = await asyncio.to_thread(call_with_keys, bench, caller, manifests, unique_caller(),
                                [(2.0, "*5"), (9.0, "*6")])
    [pause] = m.pauses
    assert m.recording and m.recording.duration_s and pause.offset_s and pause.end_offset_s
    await ship()
    async with served(settings) as (archive, base):
        await asyncio.to_thread(archive.sync)
        async with chromium(locale="ja-JP") as browser:
            page = await browser.new_page()
            await log_in(page, base)
            await page.goto(base + f"/calls/{m.call_id}")
            await page.screenshot(path=str(bench.log_dir / "archive-call-paused-ja.png"),
                                  full_page=True)
            bar = page.locator("#pausebar rect.paused")
            assert await bar.count() == 1
            x = float(await bar.get_attribute("x") or "nan")
            width = float(await bar.get_attribute("width") or "nan")
            d = m.recording.duration_s
            assert abs(x - 1000 * pause.offset_s / d) < 1.0
            assert abs(width - 1000 * (pause.end_offset_s - pause.offset_s) / d) < 1.0
            row = await page.inner_text("#pauses tbody tr")
            assert "オペレーターのキー操作" in row and "再開の操作" in row and "はい" in row
            assert "録音を一時停止" in await page.inner_text("#timeline")


async def log_in(page: Page, base: str, user: str = "supervisor") -> None:
    await page.goto(base + "/login")
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", PASSWORDS[user])
    await page.click("button[type=submit]")


@asynccontextmanager
async def served(settings: ArchiveSettings) -> AsyncIterator[tuple[Archive, str]]:
    """The archive's web UI on a loopback port, plain HTTP; its base URL."""
    settings.web.cookie_secure = False
    async with archive_server(settings) as (archive, port):
        yield archive, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def chromium(**options: Any) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium in a fresh profile, driven by Playwright."""
    with tempfile.TemporaryDirectory() as profile:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                **options)
            try:
                yield browser
            finally:
                await browser.close()


async def forged_forwarding_is_ignored(upstream: int, port: int, archive: Archive) -> None:
    """Straight to the archive (not through nginx), a client's own X-Forwarded-For is not
    believed; a forged Host is refused."""
    async with aiohttp.ClientSession() as direct:
        headers = {"Host": f"127.0.0.1:{port}", "X-Forwarded-For": "6.6.6.6"}
        async with direct.post(f"http://127.0.0.1:{upstream}/login", headers=headers,
                               data={"user": "forger", "password": "x"}) as r:
            assert r.status == 403  # no login form token either
        async with direct.get(f"http://127.0.0.1:{upstream}/login",
                              headers={"Host": "evil.example"}) as r:
            assert r.status == 400
        async with direct.get(f"http://127.0.0.1:{upstream}/calls", headers=headers,
                              allow_redirects=False) as r:
            assert r.status == 303
    addresses = {r.address for r in archive.catalog.audit_rows()}
    assert "6.6.6.6" not in addresses


@pytest.mark.timeout(240)
async def test_browser_in_japanese_then_english_flagged_calls_timeline_and_marking(
    bench: Bench, caller: Caller, start_callrec: StartApp,
    manifests: Callable[..., list[CallManifest]], unique_caller: Callable[[], str],
    settings: ArchiveSettings, ship: Ship, tmp_path: Path,
) -> None:
    """A supervisor working in Japanese: the flagged-calls page lists a real call an agent
    warned (*7 from a SIPp agent phone); its timeline link starts the recording at the
    warning; marking the caller is audited; the language link switches to English. A hostile
    caller name stays text on every new page."""
    assert bench.asterisk is not None
    settings.archive.spool = bench.asterisk.recordings
    start_callrec()
    phone = bench.start_keys_phone([(2.0, "*7")])
    try:
        number = unique_caller()
        await asyncio.to_thread(caller.call, "9012", hold_s=18.0, caller_user=number)
        [m] = await asyncio.to_thread(manifests, number)
    finally:
        phone.stop()
    [warning] = [e for e in m.timeline if e.kind is EventKind.WARNING_PLAYED]
    assert warning.offset_s is not None
    hostile = varied_call(bench.asterisk.recordings, caller_raw="0355550000",
                          name='<img src=x onerror="document.title=1">', seconds=4000)
    await ship()
    async with served(settings) as (archive, base):
        await asyncio.to_thread(archive.sync)
        async with chromium(locale="ja-JP") as browser:
            page = await browser.new_page()
            await supervisor_in_japanese(page, base, m, hostile.call_id,
                                         warning.offset_s, bench.log_dir)
        audited = {(r.actor, r.action) for r in archive.catalog.audit_rows()}
        assert {("supervisor", "mark"), ("supervisor", "play")} <= audited
        assert [mk.number for mk in archive.marked(ADMIN)] == [
            settings.numbering.e164(number)]


async def supervisor_in_japanese(page: Page, base: str, m: CallManifest, hostile_id: str,
                                 offset_s: float, shots: Path) -> None:
    await page.goto(base + "/login")
    assert await page.inner_text("h1") == "ログイン"
    await page.fill("input[name=user]", "supervisor")
    await page.fill("input[name=password]", PASSWORDS["supervisor"])
    await page.click("button[type=submit]")
    await page.click("nav a[href='/flagged']")
    assert await page.inner_text("h1") == "要確認の通話"
    assert "オペレーターによる警告" in await page.inner_text(f"tr[data-call='{m.call_id}']")
    assert "長時間通話" in await page.inner_text(f"tr[data-call='{hostile_id}']")
    await page.screenshot(path=str(shots / "archive-flagged-ja.png"), full_page=True)
    await page.click(f"tr[data-call='{m.call_id}'] a")
    await page.screenshot(path=str(shots / "archive-call-timeline-ja.png"), full_page=True)
    link = page.locator("#timeline tr.warning_played a")
    assert (await link.get_attribute("href") or "").endswith(f"#t={offset_s:.1f}")
    await link.click()  # a media fragment: the browser's own player starts at the warning
    await page.wait_for_function(
        "() => { const p = document.querySelector('video, audio'); return p && p.readyState >= 1"
        " }")
    at = await page.evaluate("() => document.querySelector('video, audio').currentTime")
    assert abs(at - offset_s) < 0.6, (at, offset_s)
    await page.go_back()
    await page.select_option("#mark-caller select[name=treatment]", "warning")
    await page.click("#mark-caller button")
    assert "発信者を登録しました" in await page.inner_text("p.message")
    await page.click("a[hreflang=en]")
    assert "Marked callers" in await page.inner_text("nav")
    await page.goto(base + f"/calls/{hostile_id}")
    assert await page.title() != "1" and await page.locator("img").count() == 0
    assert "onerror" in await page.inner_text("#caller-name")  # shown as text
