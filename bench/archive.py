"""Archive benchmark: catalog search with 1 000 000 synthetic calls, and catalog sync of 10 000 new
manifests from the bench's SeaweedFS.

Search latency is through :meth:`archive.service.Archive.search` (the audit row included, as in
the UI), beside a primary-key lookup in the same catalog as the baseline. Sync is timed beside
plain boto3 listing and GETting the same objects with the same threads: the S3 floor.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archive.catalog import Query
from archive.catalog.sqlite import SQLiteCatalog
from archive.config import ArchiveSettings, CatalogSettings
from archive.service import Actor, Archive
from bench import percentile
from bench.upload import new_bucket, workdir
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import CallManifest, Party, Policy, RecordingStatus
from callrec.numbering import NumberingPlan
from callrec.s3.settings import RetentionSettings, S3Settings
from testbench.bench import Bench
from testbench.s3 import s3_client

OUTCOMES = [("completed", 70), ("abandoned", 10), ("no_agent", 8), ("abandoned_in_notice", 5),
            ("complaint", 4), ("failed", 2.5), ("harassment", 0.5)]
STATUSES = [("recorded", 95), ("unrecorded", 4), ("interrupted", 1)]
GOAL_MS = 50.0
ACTOR = Actor("bench", "admin", "cli")


def _synthetic_rows(count: int, days: int, rng: random.Random,
                    plan: NumberingPlan) -> tuple[list[tuple[Any, ...]], list[str], list[str]]:
    """Rows shaped as ``archive.rows.row_for`` makes them: 200 000 callers (repeat callers),
    300 agents, 20 DIDs, over ``days`` days."""
    callers = [f"0{rng.choice('3456789')}{rng.randrange(10 ** 8, 10 ** 9)}"
               for _ in range(200_000)]
    agents = [f"agent-{i:03d}" for i in range(300)]
    outcomes = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES], k=count)
    statuses = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES], k=count)
    start = datetime.now(UTC) - timedelta(days=days)
    step = days * 86400_000 // count
    rows = []
    for i in range(count):
        ms = int(start.timestamp() * 1000) + i * step
        caller, agent = rng.choice(callers), rng.choice(agents)
        rows.append((f"{i:016d}-bench", ms, datetime.fromtimestamp(ms / 1000, UTC)
                     .strftime("%Y-%m-%d"), caller, plan.e164(caller), caller, "", agent,
                     json.dumps([agent]), f"05012340{i % 20:02d}", "inbound", outcomes[i],
                     statuses[i], "", 1, 0, float(rng.randrange(5, 900)), 0,
                     f"recordings/x/{i}.json", f"recordings/x/{i}.wav", None, None, "e", "",
                     f"queue-{i % 8}", None, "", "", ""))
    return rows, callers, agents


def build_catalog(path: Path, count: int, plan: NumberingPlan,
                  rng: random.Random) -> tuple[SQLiteCatalog, list[str], list[str], float]:
    catalog = SQLiteCatalog(path, plan)
    rows, callers, agents = _synthetic_rows(count, 365, rng, plan)
    started = time.monotonic()
    with catalog.transaction() as db:  # bulk load: the same tables upsert() fills
        db.executemany(f"INSERT INTO calls VALUES ({', '.join('?' * len(rows[0]))})", rows)
        db.executemany("INSERT INTO call_agents VALUES (?, ?, ?)",
                       ((r[7], r[1], r[0]) for r in rows))
    catalog.db.execute("ANALYZE")
    return catalog, callers, agents, time.monotonic() - started


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def search_table(bench: Bench, count: int, runs: int = 300) -> list[str]:
    rng = random.Random(7)
    with workdir() as work:
        settings = _settings(bench, "unused", work)
        catalog, callers, agents, load_s = build_catalog(work / "catalog.sqlite3", count,
                                                         settings.numbering, rng)
        archive = Archive(settings, catalog=catalog)
        now = datetime.now(UTC)
        ids = [r.call_id for r in catalog.search(Query(limit=1000))]

        def month() -> tuple[datetime, datetime]:
            end = now - timedelta(days=rng.randrange(0, 330))
            return end - timedelta(days=30), end

        cases: dict[str, Callable[[], object]] = {
            "baseline: call by id": lambda: catalog.get(rng.choice(ids)),
            "caller (exact, any spelling)": lambda: archive.search(
                ACTOR, Query(caller=rng.choice(callers))),
            "caller prefix (4 digits)": lambda: archive.search(
                ACTOR, Query(caller_prefix=rng.choice(callers)[:4])),
            "agent": lambda: archive.search(ACTOR, Query(agent=rng.choice(agents))),
            "outcome + 30 days": lambda: archive.search(ACTOR, Query(
                outcome=rng.choice([o for o, _ in OUTCOMES]), since=(m := month())[0],
                until=m[1])),
            "dashboard (30 days)": lambda: catalog.daily(30),
        }
        lines = [f"archive catalog: {count:,} calls (bulk load {load_s:.0f} s); {runs} searches "
                 f"each, newest 100 rows, audit row written (ms)",
                 f"{'search':<30} {'p50':>7} {'p99':>7} {'p99/goal':>9} {'p99/baseline':>13}"]
        base = 0.0
        for name, fn in cases.items():
            ms = timed(fn, runs)
            p99 = percentile(ms, 99)
            base = base or p99
            lines.append(f"{name:<30} {percentile(ms, 50):>7.2f} {p99:>7.2f} "
                         f"{p99 / GOAL_MS:>9.2f} {p99 / base:>13.1f}")
        archive.close()
    lines.append(f"goal: p99 <= {GOAL_MS:g} ms (p99/goal <= 1)")
    return lines


def _settings(bench: Bench, bucket: str, work: Path) -> ArchiveSettings:
    ep = bench.endpoints
    assert ep is not None
    return ArchiveSettings(
        s3=S3Settings(endpoint=ep.s3_endpoint, bucket=bucket, access_key=ep.s3.access_key,
                      secret_key=ep.s3.secret_key),
        retention=RetentionSettings(mode=""),
        archive=CatalogSettings(catalog=work / "sync.sqlite3", host_id="bench", spool=work),
        evidence=EvidenceSettings(dir=work / "evidence", host="bench"))


def _put_manifests(bench: Bench, bucket: str, count: int, threads: int) -> None:
    ep = bench.endpoints
    assert ep is not None
    client = s3_client(ep.s3_endpoint, ep.s3, threads)
    at = datetime.now(UTC)

    def put(i: int) -> None:
        m = CallManifest(call_id=f"{at:%Y%m%dT%H%M%S}Z-{i:012x}", asterisk_uniqueid=f"1.{i}",
                         policy=Policy.NEVER, status=RecordingStatus.UNRECORDED,
                         outcome="completed", entered_at=at, caller=Party(
                             number_raw=f"03{i:08d}", number=f"03{i:08d}"))
        client.put_object(Bucket=bucket, Key=f"recordings/{at:%Y/%m/%d}/{m.call_id}.json",
                          Body=m.to_json(),
                          ContentType="application/json")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, range(count)))
    client.close()


def sync_table(bench: Bench, count: int, threads: int = 16) -> list[str]:
    bucket = new_bucket(bench)
    _put_manifests(bench, bucket, count, threads)
    ep = bench.endpoints
    assert ep is not None
    client = s3_client(ep.s3_endpoint, ep.s3, threads)

    def plain() -> None:  # the floor: list, then GET every body with the same threads
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="recordings/") for o in page.get("Contents", [])]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(),
                          keys))

    with workdir() as work:
        settings = _settings(bench, bucket, work)
        settings.archive.sync_concurrency = threads
        base_s = min(timed(plain, 2)) / 1000
        archive = Archive(settings)
        report = archive.sync()
        archive.close()
    client.close()
    assert report.fetched == count, report.line()
    return [f"catalog sync of {count:,} new manifests from S3, {threads} threads",
            f"  plain boto3 list + GET {base_s:.1f} s; callrec archive sync {report.seconds:.1f} s"
            f" ({count / report.seconds:,.0f}/s); callrec/plain {report.seconds / base_s:.2f}x"]


def run(bench: Bench, calls: int, sync_count: int) -> str:
    lines = search_table(bench, calls)
    if sync_count:
        lines += [""] + sync_table(bench, sync_count)
    return "\n".join(lines)
