"""The catalog synced from what the real uploader archived in SeaweedFS; search, presigned URLs,
outcome and legal hold through the archive, audit shipped to S3, a second archive server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from archive.catalog import Query
from archive.config import ArchiveSettings
from archive.service import ActionFailed, Actor, Archive, Forbidden
from callrec.manifest import CallManifest, RecordingStatus
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.endpoints import Endpoints
from testbench.sipp import Caller
from testbench.spool import varied_call
from tests.helpers import Ship, archive_settings, ids

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
ADMIN = Actor("tester", "admin", "cli")
SUPERVISOR = Actor("sv1", "supervisor", "web", "127.0.0.1")
VIEWER = Actor("view1", "viewer", "web", "127.0.0.1")


def spool_of(settings: ArchiveSettings) -> Path:
    assert settings.archive.spool is not None
    return settings.archive.spool


async def test_sync_incremental_then_rebuild_gives_the_same_rows(
    settings: ArchiveSettings, ship: Ship, archive: Archive,
) -> None:
    spool = spool_of(settings)
    first = [varied_call(spool, caller_raw=f"0312345{i:03d}", days_ago=i % 3) for i in range(6)]
    await ship()
    report = archive.sync()
    assert (report.fetched, report.errors) == (6, {})
    assert archive.sync().fetched == 0  # nothing new: listed, not fetched again
    later = [varied_call(spool, caller_raw="0399999999"), varied_call(spool, days_ago=2)]
    await ship()
    report = archive.sync()
    assert report.fetched == 2
    everything = Query(limit=1000)
    incremental = sorted(archive.catalog.search(everything), key=lambda r: r.call_id)
    assert ids(incremental) == {m.call_id for m in first + later}
    rebuilt = archive.sync(rebuild=True)
    assert rebuilt.fetched == 8
    assert sorted(archive.catalog.search(everything), key=lambda r: r.call_id) == incremental


async def test_search_by_each_filter(settings: ArchiveSettings, ship: Ship,
                                     archive: Archive) -> None:
    spool = spool_of(settings)
    tokyo = varied_call(spool, caller_raw="03-1234-5678", agents=("alice", "bob"),
                        did="0501111111", seconds=30)
    mobile = varied_call(spool, caller_raw="+81 90 2222 3333", agents=("bob",),
                         outcome="complaint", days_ago=3, seconds=600)
    short = varied_call(spool, caller_raw="0312340000", agents=(), outcome="abandoned",
                        status=RecordingStatus.UNRECORDED, days_ago=10, seconds=5)
    harassing = varied_call(spool, caller_raw="09022223333", outcome="harassment", days_ago=1)
    await ship()
    archive.sync(full=True)

    def find(**kw: object) -> set[str]:
        return ids(archive.search(ADMIN, Query(**kw)))  # type: ignore[arg-type]

    assert find(caller="+81312345678") == find(caller="0312345678") == {tokyo.call_id}
    assert find(caller="(03) 1234-5678") == {tokyo.call_id}
    assert find(caller="090-2222-3333") == {mobile.call_id, harassing.call_id}
    assert find(caller_prefix="031234") == {tokyo.call_id, short.call_id}
    assert find(caller_prefix="+8190") == {mobile.call_id, harassing.call_id}
    assert find(agent="bob") == {tokyo.call_id, mobile.call_id}  # every agent, not only first
    assert find(agent="alice") == {tokyo.call_id}
    now = datetime.now(UTC)
    assert find(outcome="complaint", since=now - timedelta(days=5)) == {mobile.call_id}
    assert find(outcome="complaint", since=now - timedelta(days=2)) == set()
    assert find(since=now - timedelta(days=11), until=now - timedelta(days=2)) == {
        mobile.call_id, short.call_id}
    assert find(did="0501111111") == {tokyo.call_id}
    assert find(min_duration_s=100) == {mobile.call_id}
    assert find(max_duration_s=10) == {short.call_id}
    assert find(status="unrecorded") == {short.call_id}
    assert find(legal_hold=True) == {harassing.call_id}  # the harassment retention rule
    page = archive.search(ADMIN, Query(limit=2))
    rest = archive.search(ADMIN, Query(limit=10, before=int(
        page[-1].entered_at.timestamp() * 1000)))
    assert len(page) == 2 and len(rest) == 2 and not ids(page) & ids(rest)


async def test_presigned_url_plays_then_expires(settings: ArchiveSettings, ship: Ship,
                                                archive: Archive) -> None:
    m = varied_call(spool_of(settings))
    await ship()
    archive.sync()
    url = archive.url(ADMIN, m.call_id, expires_s=2)
    assert settings.s3.secret_key.get_secret_value() not in url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert m.recording is not None
        assert hashlib.sha256(response.read()).hexdigest() == m.recording.sha256
    time.sleep(3.5)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=5)
    assert refused.value.code == 403
    refused.value.close()
    capped = archive.url(ADMIN, m.call_id, expires_s=10 ** 9)
    assert f"X-Amz-Expires={settings.archive.presign_max_s}" in capped


async def test_outcome_and_hold_reach_s3_the_catalog_the_audit_and_another_server(
    settings: ArchiveSettings, ship: Ship, archive: Archive, s3: S3Client,
    endpoints: Endpoints, tmp_path: Path, password_hashes: dict[str, str],
) -> None:
    m = varied_call(spool_of(settings))
    await ship()
    archive.sync()
    with pytest.raises(Forbidden):
        archive.set_outcome(VIEWER, m.call_id, "complaint")
    archive.set_outcome(SUPERVISOR, m.call_id, "harassment")
    key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}"
    bucket = settings.s3.bucket
    tags = {t["Key"]: t["Value"] for t in
            s3.get_object_tagging(Bucket=bucket, Key=key + ".wav")["TagSet"]}
    assert tags["outcome"] == "harassment"
    assert s3.get_object_legal_hold(Bucket=bucket, Key=key + ".wav")["LegalHold"]["Status"] == "ON"
    row = archive.catalog.get(m.call_id)
    assert row is not None and row.outcome == "harassment" and row.legal_hold
    archive.hold(SUPERVISOR, m.call_id, False)
    assert s3.get_object_legal_hold(Bucket=bucket, Key=key + ".wav")["LegalHold"]["Status"] == "OFF"
    actions = [(r.actor, r.action, json.loads(r.detail))
               for r in archive.catalog.audit_rows()]
    assert ("view1", "outcome", {"refused": "role"}) in actions
    assert ("sv1", "outcome", {"outcome": "harassment", "where": "archive",
                               "by": f"sv1 ({SUPERVISOR.via})", "previous": "completed"}) in actions
    assert ("sv1", "release", {}) in actions
    shipped = [json.loads(line) for obj in s3.list_objects_v2(
        Bucket=bucket, Prefix="audit/").get("Contents", [])
        for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().splitlines()]
    assert {(e["actor"], e["action"]) for e in shipped} >= {("sv1", "outcome"), ("sv1", "release")}
    # A second archive server sharing the bucket learns both changes from S3 alone.
    other = Archive(archive_settings(endpoints, bucket, tmp_path, password_hashes,
                                     host_id="second", catalog="second.sqlite3"))
    try:
        other.sync()
        row = other.catalog.get(m.call_id)
        assert row is not None and row.outcome == "harassment" and not row.legal_hold
        archive.hold(SUPERVISOR, m.call_id, True)
        assert other.sync().changes >= 1
        seen = other.catalog.get(m.call_id)
        assert seen is not None and seen.legal_hold
    finally:
        other.close()


async def test_get_verifies_sha256_and_keeps_nothing_on_mismatch(
    settings: ArchiveSettings, ship: Ship, archive: Archive, s3: S3Client, tmp_path: Path,
) -> None:
    good, bad = varied_call(spool_of(settings)), varied_call(spool_of(settings))
    await ship()
    archive.sync()
    out = tmp_path / "out"
    out.mkdir()
    path = archive.get(ADMIN, good.call_id, out)
    assert good.recording is not None
    assert hashlib.sha256(path.read_bytes()).hexdigest() == good.recording.sha256
    # A newer version with other bytes (versioning keeps the locked one; GET serves the new).
    key = f"recordings/{bad.entered_at:%Y/%m/%d}/{bad.call_id}.wav"
    s3.put_object(Bucket=settings.s3.bucket, Key=key, Body=b"RIFF tampered")
    with pytest.raises(ActionFailed, match="differs"):
        archive.get(ADMIN, bad.call_id, out)
    assert sorted(p.name for p in out.iterdir()) == [f"{good.call_id}.json",
                                                    f"{good.call_id}.wav"]


async def test_cli_search_show_url_and_hostile_values(
    settings: ArchiveSettings, ship: Ship, archive: Archive,
) -> None:
    hostile = "\u202eevil\x1b[2J<script>alert(1)</script>=HYPERLINK(\"x\")" + "名" * 1400
    m = varied_call(spool_of(settings), caller_raw="0311112222", name=hostile)
    await ship()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(spool_of(settings)),
           "CALLREC_S3__ENDPOINT": settings.s3.endpoint or "",
           "CALLREC_S3__ACCESS_KEY": settings.s3.access_key,
           "CALLREC_S3__SECRET_KEY": settings.s3.secret_key.get_secret_value(),
           "CALLREC_S3__BUCKET": settings.s3.bucket,
           "CALLREC_ARCHIVE__CATALOG": str(settings.archive.catalog)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callrec_cli", "archive", *args],
                              env={**env, "USER": "ops1"}, capture_output=True, text=True,
                              timeout=60, check=False)

    assert "fetched 1" in cli("sync").stdout
    table = cli("search", "--caller", "03-1111-2222")
    assert table.returncode == 0 and m.call_id in table.stdout
    assert "\x1b" not in table.stdout and "\u202e" not in table.stdout
    assert "\\u202e" in table.stdout and "\\x1b" in table.stdout
    as_json = cli("search", "--caller-prefix", "0311", "--json")
    assert as_json.stdout.isascii()
    [row] = json.loads(as_json.stdout)
    assert row["caller_name"] == hostile  # exact, escaped by JSON
    shown = cli("show", m.call_id)
    assert shown.returncode == 0 and "\x1b" not in shown.stdout
    url = cli("url", m.call_id, "--expires", "30")
    assert url.stdout.startswith("http://127.0.0.1") and "X-Amz-Expires=30" in url.stdout
    missing = cli("show", "20200101T000000Z-000000000000")
    assert missing.returncode == 1 and "no call" in missing.stderr
    denied = cli("search", "--since", "yesterday")
    assert denied.returncode == 2  # argparse: a clear usage error
    audit = cli("audit", "--json")
    assert {(r["actor"], r["action"]) for r in json.loads(audit.stdout)} >= {
        ("ops1", "search"), ("ops1", "view"), ("ops1", "url")}
    for text in (table.stdout, shown.stdout, url.stdout, audit.stdout, table.stderr):
        assert settings.s3.secret_key.get_secret_value() not in text
    assert os.environ.get("CALLREC_S3__SECRET_KEY") is None


async def test_the_uploader_feeds_the_catalog_as_it_archives(
    settings: ArchiveSettings, ship: Ship, archive: Archive,
) -> None:
    m = varied_call(spool_of(settings), caller_raw="0366667777", outcome="harassment")
    await ship(feed=True)
    [row] = archive.search(ADMIN, Query(caller="03-6666-7777"))  # before any sync
    assert row.call_id == m.call_id and row.legal_hold
    assert archive.sync().fetched == 0  # the uploader's row is the object S3 lists


async def test_real_queue_calls_are_tagged_and_found_by_agent_name_and_queue(
    settings: ArchiveSettings, ship: Ship, archive: Archive, s3: S3Client, bench: Bench,
    caller: Caller, callrec: CallrecApp, unique_caller: Callable[[], str],
) -> None:
    """Calls through real queues (PJSIP members, FreePBX-style Local members), their manifests
    and recordings shipped by the real uploader: the S3 agent tag is the person, and the archive
    finds them by agent name (any case) and by queue."""
    assert bench.asterisk is not None
    spool, calls = spool_of(settings), {}
    for did, queue in (("9101", "support"), ("9103", "local")):
        number = unique_caller()
        caller.call(did, hold_s=9.0, caller_user=number, audio=bench.silence())
        calls[queue] = _real_manifest(bench.asterisk.recordings, number, spool)
    await ship()
    for queue, agent in (("support", "Sato Hanako"), ("local", "Tanaka Aiko")):
        m = calls[queue]
        key = archive.layout.base(m) + ".wav"
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(
            Bucket=settings.s3.bucket, Key=key)["TagSet"]}
        assert tags["agent"] == agent and tags["queue"] == queue, tags
    archive.sync(full=True)

    def find(**kw: object) -> set[str]:
        return ids(archive.search(ADMIN, Query(**kw)))  # type: ignore[arg-type]

    assert find(agent="sato hanako") == {calls["support"].call_id}
    assert find(agent="Tanaka Aiko") == {calls["local"].call_id}
    assert find(queue="local") == {calls["local"].call_id}
    [row] = archive.search(ADMIN, Query(queue="support"))
    assert row.agent == "Sato Hanako" and row.queue_wait_s is not None
    assert "suzuki ichiro" in [a.casefold() for a in row.agents]  # offered, not answered
    queues = {r.queue: r for r in archive.catalog.per_queue(1)}
    assert queues["support"].answered == queues["local"].answered == 1


def _real_manifest(recordings: Path, number: str, spool: Path,
                   timeout: float = 20.0) -> CallManifest:
    """The manifest callrec wrote for the call from ``number``, moved with its recording into
    the uploader's spool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in recordings.glob("*.json"):
            m = CallManifest.read(path)
            if m.caller.number_raw == number:
                time.sleep(0.3)
                # The manifest last, as callrec writes it; its signature before it.
                for suffix in (".wav", ".json.sig", ".json"):
                    source = path.with_suffix(suffix)
                    (spool / source.name).write_bytes(source.read_bytes())
                return m
        time.sleep(0.2)
    raise AssertionError(f"no manifest for {number}")


async def test_a_call_ended_for_harassment_is_held_flagged_and_reviewed_everywhere(
    settings: ArchiveSettings, ship: Ship, archive: Archive, s3: S3Client, bench: Bench,
    caller: Caller, callrec: CallrecApp, unique_caller: Callable[[], str],
    endpoints: Endpoints, tmp_path: Path, password_hashes: dict[str, str],
) -> None:
    """A real call: the agent warns (*7) then ends it (*8). Archived, its objects are under
    legal hold (the harassment outcome's retention rule); the archive flags it until a
    supervisor reviews it, and a second archive server learns the review from S3."""
    assert bench.asterisk is not None
    phone = bench.start_keys_phone([(2.0, "*7"), (10.0, "*8")])
    try:
        number = unique_caller()
        caller.call("9012", hold_s=45.0, caller_user=number, audio=bench.silence())
        m = _real_manifest(bench.asterisk.recordings, number, spool_of(settings))
    finally:
        phone.stop()
    assert m.outcome == "harassment" and m.outcome_source == "agent"
    await ship()
    key = archive.layout.base(m)
    for suffix in (".wav", ".json"):
        hold = s3.get_object_legal_hold(Bucket=settings.s3.bucket, Key=key + suffix)
        assert hold["LegalHold"]["Status"] == "ON", suffix
    archive.sync()
    [row] = archive.search(ADMIN, Query(flag="any", unreviewed=True))
    assert row.call_id == m.call_id and row.flags == "agent_warning,ended_by_agent"
    with pytest.raises(Forbidden):
        archive.review(VIEWER, m.call_id)
    archive.review(SUPERVISOR, m.call_id)
    assert archive.search(ADMIN, Query(flag="any", unreviewed=True)) == []
    assert ("sv1", "review") in {(r.actor, r.action) for r in archive.catalog.audit_rows()}
    other = Archive(archive_settings(endpoints, settings.s3.bucket, tmp_path, password_hashes,
                                     host_id="second", catalog="second.sqlite3"))
    try:
        other.sync()
        seen = other.catalog.get(m.call_id)
        assert seen is not None and seen.reviewed.startswith("sv1 ")
    finally:
        other.close()
