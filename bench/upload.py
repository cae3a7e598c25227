"""Uploader throughput: callrec's uploader vs plain boto3 ``upload_file`` (TransferManager),
same files, same concurrency, same SeaweedFS, in one run; printed as MiB/s and a ratio.

callrec does more per file than the baseline (SHA-256 check against the manifest, HEAD before and
after to verify, tags, metadata, Object Lock, manifest upload, local clean-up): the ratio is the
price of never losing a recording.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from testbench.bench import Bench
from testbench.s3 import create_locked_bucket, s3_client
from testbench.spool import fake_call
from uploader.config import S3Settings, UploaderSettings, UploadSettings
from uploader.service import Uploader


def _fake_calls(spool: Path, count: int, size_mb: int) -> int:
    for _ in range(count):
        fake_call(spool, size_mb)
    return sum(p.stat().st_size for p in spool.glob("*.wav"))


def run(bench: Bench, count: int, size_mb: int, concurrency: int) -> str:
    ep = bench.endpoints
    assert ep is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    for bucket in ("bench-callrec", "bench-boto3"):
        create_locked_bucket(client, bucket)
    work = Path(tempfile.mkdtemp(prefix="callrec-bench-"))
    try:
        spool = work / "spool"
        spool.mkdir()
        total = _fake_calls(spool, count, size_mb)
        copies = work / "copies"
        shutil.copytree(spool, copies)

        started = time.monotonic()
        transfer = TransferConfig(max_concurrency=concurrency)
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda p: client.upload_file(str(p), "bench-boto3", p.name,
                                                       Config=transfer),
                          sorted(copies.glob("*.wav"))))
        baseline_s = time.monotonic() - started

        settings = UploaderSettings(
            s3=S3Settings(endpoint=ep.s3_endpoint, bucket="bench-callrec",
                          access_key=ep.s3.access_key, secret_key=ep.s3.secret_key),
            upload=UploadSettings(spool=spool, concurrency=concurrency))
        uploader = Uploader(settings)
        started = time.monotonic()
        summary = asyncio.run(uploader.drain())
        callrec_s = time.monotonic() - started
        uploader.store.close()
    finally:
        client.close()
        shutil.rmtree(work, ignore_errors=True)
    mib = total / (1 << 20)
    return (f"upload, {count} recordings of {size_mb} MiB, concurrency {concurrency}\n"
            f"  boto3 upload_file  {mib / baseline_s:8.1f} MiB/s  ({baseline_s:.1f} s)\n"
            f"  callrec uploader   {mib / callrec_s:8.1f} MiB/s  ({callrec_s:.1f} s, "
            f"{len(summary.shipped)} shipped, {len(summary.failed)} failed)\n"
            f"  ratio callrec / boto3: {baseline_s / callrec_s:.2f}x  (goal >= 0.9x)")
