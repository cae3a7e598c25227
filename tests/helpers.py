"""The tests' shared helpers (beside tests/fakes.py): no test module imports another.

Ports, metrics pages, waiting for an agent, and the independent witnesses of what a caller
heard (Asterisk's own log, the manifest), for the integration tests against the real bench.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from archive.auth import token_digest
from archive.catalog import CallRow
from archive.config import ArchiveSettings, CatalogSettings, Token, User, WebSettings
from archive.service import Archive
from archive.web.app import WebApp
from archive.web.server import application
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import CallManifest
from callrec.s3.settings import OutcomeRule, RetentionSettings, S3Settings
from testbench.asterisk import ami_action
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.endpoints import Endpoints
from testbench.endpoints import wait_for_channel as wait_for_channel
from testbench.sipp import Caller
from uploader.config import UploaderSettings, UploadSettings

REPO = Path(__file__).resolve().parent.parent
NOTICE_JA = REPO / "sounds/ja/callrec/notice.wav"
NOTICE_S = 4.73  # length of the ja notice prompt
# A spool Asterisk cannot write: MixMonitor starts but never records.
BROKEN_SPOOL = {"CALLREC_SPOOL__ASTERISK_DIR": "/nonexistent/callrec"}

StartApp = Callable[..., CallrecApp]


def scrape(port: int) -> str:
    """A service's Prometheus metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples: all label sets of ``name``, or one ``name{labels}``."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def wait_bridged(bench: Bench, number: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(number in c.from_header and c.final_status == 200
               for c in bench.agents["answer"].calls()):
            return
        time.sleep(0.1)
    raise AssertionError("the agent never answered")


def assert_no_notice(m: CallManifest, bench: Bench) -> None:
    assert not m.notice.played and m.notice.started_at is None and not m.notice.completed
    # And the PBX, an independent witness, never played it on this channel.
    assert bench.asterisk is not None and m.asterisk_channel
    assert not bench.asterisk.played(m.asterisk_channel, "callrec/notice")


# -- the archive ------------------------------------------------------------------------
PASSWORDS = {"viewer": "viewer-password-1", "supervisor": "supervisor-password-1",
             "admin": "admin-password-1"}
TOKENS = {"desk": ("supervisor", "desk-token-" + "x" * 30),
          "wall": ("viewer", "wall-token-" + "y" * 30)}


def archive_settings(endpoints: Endpoints, bucket: str, tmp: Path, hashes: dict[str, str],
                     host_id: str = "test", catalog: str = "catalog.sqlite3",
                     ) -> ArchiveSettings:
    spool = tmp / "spool"
    spool.mkdir(exist_ok=True)
    return ArchiveSettings(
        s3=S3Settings(endpoint=endpoints.s3_endpoint, access_key=endpoints.s3.access_key,
                      secret_key=endpoints.s3.secret_key, bucket=bucket),
        retention=RetentionSettings(days=1, outcomes={
            "harassment": OutcomeRule(legal_hold=True, retention_days=30)}),
        archive=CatalogSettings(catalog=tmp / catalog, host_id=host_id, spool=spool),
        evidence=EvidenceSettings(dir=tmp / "evidence", host=f"archive-{host_id}"),
        web=WebSettings(
            port=0, cookie_secure=False, sync_interval_s=0,
            users={name: User(role=name, password_hash=h)
                   for name, h in hashes.items()},
            tokens={name: Token(role=role, sha256=token_digest(tok))
                    for name, (role, tok) in TOKENS.items()}))


Ship = Callable[..., Awaitable[list[str]]]


def uploader_settings(settings: ArchiveSettings, **upload: Any) -> UploaderSettings:
    """The uploader of the archive's bucket, shipping from the archive's spool (``upload``:
    more of its [upload] settings)."""
    assert settings.archive.spool is not None
    return UploaderSettings(s3=settings.s3, retention=settings.retention,
                            evidence=settings.evidence,
                            numbering=settings.numbering,
                            upload=UploadSettings(spool=settings.archive.spool, metrics_port=0,
                                                  **upload))


def ids(rows: list[CallRow]) -> set[str]:
    return {r.call_id for r in rows}


def call_ids(calls: list[CallManifest]) -> set[str]:
    return {m.call_id for m in calls}


# The archive web app in-process (no S3 is reached: its endpoint is a closed port).
DESK_TOKEN = "desk-token-" + "z" * 30
WEB_USER, WEB_PASSWORD = "sato", PASSWORDS["supervisor"]


def offline_archive_settings(tmp: Path, password_hash: str) -> ArchiveSettings:
    return ArchiveSettings(
        s3=S3Settings(endpoint="http://127.0.0.1:9", access_key="k", secret_key="s"),
        archive=CatalogSettings(catalog=tmp / "catalog.sqlite3"),
        evidence=EvidenceSettings(dir=tmp / "evidence", host="offline"),
        web=WebSettings(cookie_secure=False, sync_interval_s=0,
                        users={WEB_USER: User(role="supervisor", password_hash=password_hash)},
                        tokens={"desk": Token(role="supervisor",
                                              sha256=token_digest(DESK_TOKEN))}))


async def login_token(client: Any) -> str:
    """The login form's CSRF token (its cookie twin stays in the client's jar): an aiohttp
    ClientSession or TestClient."""
    async with client.get("/login") as reply:
        text = await reply.text()
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found is not None, "no CSRF token in the login form"
    return found.group(1)


Login = Callable[[str], Awaitable[aiohttp.ClientSession]]  # a session logged in as a user


async def csrf_of(session: aiohttp.ClientSession, path: str) -> str:
    async with session.get(path) as r:
        match = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert match, f"no CSRF token on {path}"
    return match.group(1)


# -- evidence: one sealing host per test (its own key and chain) ---------------------------
def evidence_env(bench: Bench, bucket: str, tmp: Path, host: str,
                 **overrides: str) -> dict[str, str]:
    """The environment of the uploader, the archive and ``callrec keys``/``reconcile`` of a
    test whose ``callrec ari`` seals as ``host`` with its key under ``tmp``
    (testbench.bench.Bench.service_env)."""
    return bench.service_env(bucket, tmp, host, **overrides)


def callrec_cli(env: dict[str, str], *args: str, cwd: Path | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callrec_cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@asynccontextmanager
async def archive_server(settings: ArchiveSettings) -> AsyncIterator[tuple[Archive, int]]:
    """The archive's web UI in-process on a loopback port, plain HTTP: it and its port."""
    archive = Archive(settings)
    webapp = WebApp(settings, archive)
    runner = web.AppRunner(application(webapp))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield archive, runner.addresses[0][1]
    finally:
        await runner.cleanup()
        webapp.pool.shutdown(wait=True)
        archive.close()


def own_spool(shared: Path, call_id: str, spool: Path) -> Path:
    """A spool of the call's own files (its manifest and recording), moved out of ``shared``:
    the bench's spool holds what earlier tests left, which an uploader on it would ship too."""
    spool.mkdir(exist_ok=True)
    for path in shared.glob(f"{call_id}.*"):
        shutil.move(path, spool / path.name)
    return spool


def sealing(env: dict[str, str]) -> dict[str, str]:
    """``callrec ari`` overrides that make it seal as the test's host."""
    return {k: env[k] for k in ("CALLREC_EVIDENCE__DIR", "CALLREC_EVIDENCE__HOST")}


def call_with_keys(bench: Bench, caller: Caller, manifests: Callable[..., list[CallManifest]],
                   number: str, keys: list[tuple[float, str]], did: str = "9012",
                   hold_s: float = 30.0, agent_audio: Path | None = None) -> CallManifest:
    """One call from ``number`` to the agent-keys phone, which presses ``keys`` after it
    answers and says ``agent_audio`` (testbench/sipp.py KeysPhone); its manifest."""
    phone = bench.start_keys_phone(keys, audio=agent_audio)
    try:
        caller.call(did, hold_s=hold_s, caller_user=number)
        [m] = manifests(number)
    finally:
        phone.stop()
    return m


def stop_mixmonitor(bench: Bench, endpoints: Endpoints, channel: str) -> None:
    """Someone else stops the channel's recording (a PBX admin, a script), as AMI allows."""
    reply = ami_action(bench.ports.ami, endpoints.asterisk,
                       {"Action": "StopMixMonitor", "Channel": channel})
    assert reply.get("Response") == "Success", reply
