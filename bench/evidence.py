"""Evidence benchmark: what sealing costs per call, and ``callrec archive verify`` over many
archived calls beside plain boto3 listing and GETting the same manifests with the same threads
(the S3 floor; the goal is verify at >= 0.9x the floor's speed).

Sealing is timed beside what every call already pays: the plain manifest write (tmp, fsync,
rename) and the SHA-256 of a 3-minute stereo recording.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from archive.evidence.verify import Verifier
from bench.upload import new_bucket, workdir
from callrec.durable import write_atomic
from callrec.evidence.chain import SpoolWriter
from callrec.evidence.keys import HostKey
from callrec.evidence.ledger import Ledger
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import (
    AgentLeg,
    CallManifest,
    ChainLink,
    Notice,
    Party,
    Policy,
    Recording,
    RecordingStatus,
)
from callrec.s3.layout import Layout
from callrec.s3.settings import S3Settings
from callrec.s3.store import Store
from callrec.signing import Entry, encode_sig, sha256_hex
from testbench.bench import Bench
from testbench.s3 import s3_client

RECORDING_BYTES = 180 * 8000 * 2 * 2  # 3 minutes, 8 kHz, 16-bit, stereo
STUB_WAV = b"RIFF" + bytes(1020)  # the verify bench's recordings: listed, sized, not read


def _manifest(i: int, at: datetime, size: int = RECORDING_BYTES) -> CallManifest:
    """A manifest of a recorded, answered call (the usual size)."""
    return CallManifest(
        call_id=f"{at:%Y%m%dT%H%M%S}Z-{i:012x}", asterisk_uniqueid=f"1700000000.{i}",
        asterisk_linkedid=f"1700000000.{i}", asterisk_channel=f"PJSIP/trunk-{i:08x}",
        did="0501234567", caller=Party(number_raw=f"03{i:08d}", number=f"03{i:08d}"),
        policy=Policy.OPTIONAL, status=RecordingStatus.RECORDED, outcome="completed",
        agents=[AgentLeg(endpoint="agent-007", channel="PJSIP/agent-007-00000001",
                         dial_status="ANSWER", answered_at=at, bridged_at=at)],
        notice=Notice(prompt="callrec/notice", language="ja", started_at=at, ended_at=at,
                      completed=True),
        recording=Recording(path=f"/var/spool/callrec/{i}.wav", mixmonitor_id="0x1",
                            started_at=at, verified_at=at, closed_at=at, size=size,
                            duration_s=180.0, sha256="0" * 64),
        entered_at=at, answered_at=at, ended_at=at)


def _per_call_us(fn: object, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        fn(i)  # type: ignore[operator]
    return (time.perf_counter() - started) / count * 1e6


def seal_table(count: int = 2000) -> list[str]:
    at = datetime.now(UTC)
    manifests = [_manifest(i, at) for i in range(count)]
    recording = bytes(RECORDING_BYTES)
    with workdir() as work:
        plain_dir, sealed_dir = work / "plain", work / "sealed"
        plain_dir.mkdir()
        sealed_dir.mkdir()
        writer = SpoolWriter(sealed_dir, EvidenceSettings(dir=work / "evidence", host="bench"))
        key = HostKey(EvidenceSettings(dir=work / "evidence", host="bench"))
        data = manifests[0].to_json()
        plain = _per_call_us(lambda i: write_atomic(plain_dir, f"{i}.json",
                                                    manifests[i].to_json()), count)
        sealed = _per_call_us(lambda i: writer.write(manifests[i]), count)
        sign = _per_call_us(lambda i: key.sign(data), count)
        digest = _per_call_us(lambda i: hashlib.sha256(recording).digest(), 20)
    return [f"sealing, per call ({count:,} manifests of {len(data):,} bytes; fsync on this "
            "disk)",
            f"  manifest write: plain {plain:,.0f} us, sealed {sealed:,.0f} us "
            f"(sealed/plain {sealed / plain:.2f}x; seal = {sealed - plain:,.0f} us, of which "
            f"Ed25519 sign {sign:,.0f} us, the rest the chain's log append and fsync and the "
            ".sig file)",
            f"  SHA-256 of a 3-minute stereo recording ({RECORDING_BYTES / 1e6:.1f} MB): "
            f"{digest:,.0f} us; seal/SHA-256 {(sealed - plain) / digest:.2f}x"]


def _sealed_bodies(count: int, work: Path, settings: EvidenceSettings,
                   ) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """(the manifest's key, its bytes, its metadata); the recording is ``key[:-5] + .wav``."""
    """``count`` sealed manifests of one chain (its log written too, without a per-entry fsync:
    a bench, not a call flow) with their keys and metadata."""
    key = HostKey(settings)
    layout = Layout(S3Settings().key_template)
    at = datetime.now(UTC)
    prev = ""
    log = (settings.dir / "chains" / f"{settings.host}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        for i in range(count):
            m = _manifest(i, at, len(STUB_WAV))
            link = ChainLink(chain=settings.host, seq=i + 1, prev=prev, key=key.signer)
            data = m.model_copy(update={"chain": link}).to_json()
            digest = sha256_hex(data)
            out.write(Entry(i + 1, digest, prev, m.call_id, at.isoformat()).line())
            prev = digest
            yield layout.base(m) + ".json", data, {"signature": encode_sig(key.sign(data)),
                                                    "sha256": digest}


def verify_table(bench: Bench, count: int, threads: int = 16) -> list[str]:
    ep = bench.endpoints
    assert ep is not None
    bucket = new_bucket(bench)
    client = s3_client(ep.s3_endpoint, ep.s3, threads)
    s3 = S3Settings(endpoint=ep.s3_endpoint, access_key=ep.s3.access_key,
                    secret_key=ep.s3.secret_key, bucket=bucket)
    with workdir() as work:
        settings = EvidenceSettings(dir=work / "evidence", host="bench", checkpoint_mode="")
        started = time.perf_counter()
        def put(item: tuple[str, bytes, dict[str, str]]) -> None:
            # As the uploader does: the recording, then its manifest.
            client.put_object(Bucket=bucket, Key=item[0][:-5] + ".wav", Body=STUB_WAV)
            client.put_object(Bucket=bucket, Key=item[0], Body=item[1], Metadata=item[2],
                              ContentType="application/json")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, _sealed_bodies(count, work, settings)))
        store = Store(s3, connections=threads + 2)  # as Archive's: the workers and the lister
        ledger = Ledger(store, settings, settings.host)
        ledger.publish_keys()
        ledger.checkpoint()
        put_s = time.perf_counter() - started

        def plain() -> None:  # the floor: list, then GET every body with the same threads
            keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix="recordings/") for o in page.get("Contents", [])
                if o["Key"].endswith(".json")]
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read(),
                              keys))

        runs = 1 if count > 20_000 else 2  # a hundred thousand GETs take minutes each way
        floor_s = _best(plain, runs)
        verifier = Verifier(store, Layout(s3.key_template), settings, threads)
        rss_before = _rss_kib()
        verify_s = _best(lambda: _verified(verifier, count), runs)
        rss_after = _rss_kib()
        store.close()
    client.close()
    return [f"archive verify of {count:,} sealed manifests in SeaweedFS, {threads} threads "
            f"(written in {put_s:.0f} s)",
            f"  plain boto3 list + GET {floor_s:.1f} s; callrec archive verify {verify_s:.1f} s "
            f"({count / verify_s:,.0f} calls/s); speed verify/plain {floor_s / verify_s:.2f}x "
            f"(goal >= 0.90x); RSS after verify {rss_after / 1024:,.0f} MiB "
            f"({(rss_after - rss_before) / 1024:+,.0f} MiB)"]


def _rss_kib() -> int:
    """The process's resident set now (ru_maxrss is a peak the writing phase already set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _verified(verifier: Verifier, count: int) -> None:
    report = verifier.run()
    totals = report.totals()
    assert totals["verified"] == count and report.ok, json.dumps(report.as_dict())[:2000]


def _best(fn: object, runs: int = 2) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def run(bench: Bench, count: int) -> str:
    lines = seal_table()
    if count:
        lines += [""] + verify_table(bench, count)
    return "\n".join(lines)
