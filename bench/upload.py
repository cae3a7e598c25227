"""Uploader benchmarks against the bench's SeaweedFS, each with a baseline from the same run.

(a) many 1 MiB recordings and (b) one large file: callrec's uploader vs plain boto3
``upload_file`` (TransferManager) of the same two objects per call (recording and manifest), same
concurrency - MiB/s and the ratio. callrec
does more per file (SHA-256 against the manifest, HEAD to verify, tags, metadata, Object Lock,
the manifest upload, local clean-up): the ratio is the price of never losing a recording.
(c) manifest written (the moment the call flow proves the recording closed, just after hang-up)
-> objects verified and the spool cleaned, p50/p99, with 50 calls' recordings arriving at once,
through the daemon (inotify + workers); baseline: one call arriving alone.
(d) peak RSS of ``callrec upload`` draining a 10 000-call backlog vs the same daemon idle.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig

from bench import percentile
from callrec.lifecycle import Stop
from callrec.s3.settings import S3Settings
from testbench.bench import Bench
from testbench.s3 import create_locked_bucket, s3_client
from testbench.spool import fake_call
from uploader.config import UploaderSettings, UploadSettings
from uploader.daemon import Daemon
from uploader.journal import UploadJournal
from uploader.service import Uploader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@contextmanager
def workdir() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="callrec-bench-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def settings(bench: Bench, spool: Path, bucket: str, concurrency: int) -> UploaderSettings:
    ep = bench.endpoints
    assert ep is not None
    return UploaderSettings(
        s3=S3Settings(endpoint=ep.s3_endpoint, bucket=bucket, access_key=ep.s3.access_key,
                      secret_key=ep.s3.secret_key),
        upload=UploadSettings(spool=spool, concurrency=concurrency, metrics_port=0))


def new_bucket(bench: Bench) -> str:
    ep = bench.endpoints
    assert ep is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    name = f"bench-{uuid.uuid4().hex[:10]}"
    create_locked_bucket(client, name)
    client.close()
    return name


def _boto3_upload(client: S3Client, bucket: str, concurrency: int, path: Path) -> None:
    """The baseline ships what callrec ships per call: the recording and its manifest."""
    config = TransferConfig(max_concurrency=concurrency)
    client.upload_file(str(path), bucket, path.name, Config=config)
    manifest = path.with_suffix(".json")
    client.upload_file(str(manifest), bucket, manifest.name, Config=config)


def throughput(bench: Bench, count: int, size_mb: int, concurrency: int, rounds: int = 2,
               ) -> str:
    """boto3 and callrec alternate ``rounds`` times on the same files (a noisy 2-core box)."""
    ep = bench.endpoints
    assert ep is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    baseline_s = callrec_s = 0.0
    shipped = failed = 0
    with workdir() as work:
        pristine = work / "pristine"
        pristine.mkdir()
        for _ in range(count):
            fake_call(pristine, size_mb)
        total = sum(p.stat().st_size for p in pristine.glob("*.wav"))
        wavs = sorted(pristine.glob("*.wav"))
        for r in range(rounds):
            bucket = new_bucket(bench)
            started = time.monotonic()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(partial(_boto3_upload, client, bucket, concurrency), wavs))
            baseline_s += time.monotonic() - started

            spool = work / f"spool{r}"
            shutil.copytree(pristine, spool)
            # The steady state: a journal from the uploader's earlier runs exists beside it.
            UploadJournal(spool / ".uploader.sqlite3").states()
            uploader = Uploader(settings(bench, spool, new_bucket(bench), concurrency))
            started = time.monotonic()
            summary = asyncio.run(uploader.drain())
            callrec_s += time.monotonic() - started
            shipped, failed = shipped + len(summary.shipped), failed + len(summary.failed)
            uploader.store.close()
            uploader.close()
    client.close()
    mib = total * rounds / (1 << 20)
    return (f"upload, {count} recording(s) of {size_mb} MiB, concurrency {concurrency}, "
            f"{rounds} alternating rounds\n"
            f"  boto3 upload_file  {mib / baseline_s:8.1f} MiB/s  ({baseline_s:.1f} s)\n"
            f"  callrec uploader   {mib / callrec_s:8.1f} MiB/s  ({callrec_s:.1f} s, "
            f"{shipped} shipped, {failed} failed)\n"
            f"  ratio callrec / boto3: {baseline_s / callrec_s:.2f}x  (goal >= 0.9x)")


def _arrivals(spool: Path, waves: list[int], latencies: list[float], size_kb: int) -> None:
    """Write waves of finished calls; time each until the daemon has verified and removed it."""
    for wave in waves:
        written = {}
        for _ in range(wave):
            m = fake_call(spool, 0, size_kb=size_kb)
            written[m.call_id] = time.monotonic()
        while written:
            for call_id, at in list(written.items()):
                if not (spool / f"{call_id}.json").exists():
                    latencies.append(time.monotonic() - at)
                    del written[call_id]
            time.sleep(0.005)
        time.sleep(0.5)


def latency(bench: Bench, waves: list[int], size_kb: int = 1440) -> list[float]:
    """Through the daemon; 1440 KiB = a 90 s call at 8 kHz, 16 bit."""
    latencies: list[float] = []
    with workdir() as spool:
        daemon = Daemon(Uploader(settings(bench, spool, new_bucket(bench), 4)))

        async def main() -> None:
            stop = Stop(grace_s=60)
            await daemon.startup()
            run = asyncio.create_task(daemon.run(stop))
            await asyncio.to_thread(_arrivals, spool, waves, latencies, size_kb)
            stop.requested.set()
            await run
            await daemon.shutdown(stop)

        asyncio.run(main())
    return latencies


def hangup_to_verified(bench: Bench, calls: int) -> str:
    alone = latency(bench, [1] * 10)
    burst = latency(bench, [calls] * 3)
    return (f"manifest written -> verified in S3 and spool cleaned (daemon, 90 s calls), s\n"
            f"  one call at a time   p50 {percentile(alone, 50):.3f}  p99 "
            f"{percentile(alone, 99):.3f}  ({len(alone)} calls)\n"
            f"  {calls} at once (x3)     p50 {percentile(burst, 50):.3f}  p99 "
            f"{percentile(burst, 99):.3f}  ({len(burst)} calls)  (goal p99 <= 1 s)\n"
            f"  ratio p99 burst / alone: {percentile(burst, 99) / percentile(alone, 99):.1f}x")


def _peak_rss_mb(pid: int, stop: threading.Event, out: list[float]) -> None:
    peak = 0.0
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            break
        time.sleep(0.05)
    out.append(peak)


def daemon_rss(bench: Bench, spool: Path, bucket: str, until_empty: bool) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of ``callrec upload`` until the spool is empty (or 5 s idle)."""
    ep = bench.endpoints
    assert ep is not None
    env = {"PATH": "/usr/bin:/bin", "CALLREC_S3__ENDPOINT": ep.s3_endpoint,
           "CALLREC_S3__ACCESS_KEY": ep.s3.access_key, "CALLREC_S3__SECRET_KEY": ep.s3.secret_key,
           "CALLREC_S3__BUCKET": bucket, "CALLREC_UPLOAD__SPOOL": str(spool),
           "CALLREC_UPLOAD__METRICS_PORT": "0", "CALLREC_UPLOAD__CONCURRENCY": "8"}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "callrec_cli", "upload"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop, peak = threading.Event(), list[float]()
    sampler = threading.Thread(target=_peak_rss_mb, args=(child.pid, stop, peak))
    sampler.start()
    try:
        if until_empty:
            while any(spool.glob("*.json")) and child.poll() is None:
                time.sleep(0.2)
        else:
            time.sleep(5)
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        child.send_signal(signal.SIGTERM)
        child.wait(30)
    return peak[0], elapsed


def backlog_rss(bench: Bench, calls: int) -> str:
    with workdir() as work:
        idle_spool, spool = work / "idle", work / "spool"
        idle_spool.mkdir()
        spool.mkdir()
        for _ in range(calls):
            fake_call(spool, 0, size_kb=16)
        idle, _ = daemon_rss(bench, idle_spool, new_bucket(bench), until_empty=False)
        busy, took = daemon_rss(bench, spool, new_bucket(bench), until_empty=True)
        left = len(list(spool.glob("*.json")))
    return (f"uploader RSS, callrec upload (concurrency 8)\n"
            f"  idle, empty spool              peak {idle:6.1f} MiB\n"
            f"  draining {calls} calls' backlog  peak {busy:6.1f} MiB  ({took:.0f} s, "
            f"{calls - left} archived)  (goal <= 150 MB)\n"
            f"  ratio backlog / idle: {busy / idle:.2f}x")


def run(bench: Bench, count: int, large_mb: int, backlog: int) -> str:
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    parts = [throughput(bench, count, 1, 8)] if count else []
    if large_mb:
        parts.append(throughput(bench, 1, large_mb, 8, rounds=3))
    parts.append(hangup_to_verified(bench, 50))
    if backlog:
        parts.append(backlog_rss(bench, backlog))
    return "\n\n".join(parts)
