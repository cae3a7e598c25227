"""Real calls through callrec, archived into SeaweedFS by ``callrec upload --drain``."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from archive.catalog.sqlite import SQLiteCatalog
from callrec.manifest import CallManifest
from callrec.numbering import NumberingPlan
from testbench.bench import Bench
from testbench.procs import free_port
from testbench.sipp import Caller
from testbench.spool import fake_call
from tests.helpers import StartApp, metric, scrape

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]


def uploader_env(bench: Bench, bucket: str, **overrides: str) -> dict[str, str]:
    """The uploader's environment on this bench (secrets via env, never argv)."""
    ep, asterisk = bench.endpoints, bench.asterisk
    assert ep is not None and asterisk is not None
    return {"PATH": "/usr/bin:/bin", "CALLREC_S3__ENDPOINT": ep.s3_endpoint,
            "CALLREC_UPLOAD__METRICS_PORT": str(free_port()),
            "CALLREC_S3__ACCESS_KEY": ep.s3.access_key,
            "CALLREC_S3__SECRET_KEY": ep.s3.secret_key, "CALLREC_S3__BUCKET": bucket,
            "CALLREC_UPLOAD__SPOOL": str(asterisk.recordings), "CALLREC_RETENTION__DAYS": "1",
            # The bench's callrec ari seals with this host key and chain (testbench/bench.py).
            "CALLREC_EVIDENCE__DIR": str(bench.state / "evidence"),
            "CALLREC_EVIDENCE__HOST": f"bench-{bench.instance}",
            "CALLREC_RETENTION__OUTCOMES": json.dumps(
                {"complaint": {"legal_hold": True, "retention_days": 30},
                 "harassment": {"legal_hold": True, "retention_days": 3650}}),
            **overrides}


def port_of(env: dict[str, str]) -> int:
    return int(env["CALLREC_UPLOAD__METRICS_PORT"])


def drain(bench: Bench, bucket: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callrec_cli", "upload", "--drain"],
                          env=uploader_env(bench, bucket, **overrides), capture_output=True,
                          text=True, timeout=120, check=False)


def test_real_call_is_archived_verified_then_removed_locally(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], s3: S3Client, locked_bucket: str,
) -> None:
    assert bench.asterisk is not None
    start_callrec()
    number = unique_caller()
    caller.call("9004", hold_s=7.0, caller_user=number + "&outcome=x")  # dialplan: complaint
    [m] = manifests(number + "&outcome=x")
    assert m.recording is not None and m.recording.sha256
    wav = bench.asterisk.recordings / f"{m.call_id}.wav"
    local_json = (bench.asterisk.recordings / f"{m.call_id}.json").read_bytes()
    started = time.monotonic()
    result = drain(bench, locked_bucket)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shipped 1," in result.stdout or "shipped" in result.stdout
    base = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}"

    head = s3.head_object(Bucket=locked_bucket, Key=base + ".wav", ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == m.recording.sha256
    assert head["ChecksumSHA256"] == base64.b64encode(
        bytes.fromhex(m.recording.sha256)).decode()
    assert head["ContentLength"] == m.recording.size
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockLegalHoldStatus"] == "ON"  # the complaint rule
    body = s3.get_object(Bucket=locked_bucket, Key=base + ".wav")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == m.recording.sha256
    tags = {t["Key"]: t["Value"] for t in
            s3.get_object_tagging(Bucket=locked_bucket, Key=base + ".wav")["TagSet"]}
    assert tags == {"caller": m.caller.number, "agent": "agent-answer", "outcome": "complaint",
                    "did": "9004", "status": "recorded"}
    archived = s3.get_object(Bucket=locked_bucket, Key=base + ".json")["Body"].read()
    assert archived == local_json
    assert not wav.exists() and not (bench.asterisk.recordings / f"{m.call_id}.json").exists()
    with pytest.raises(ClientError):
        version = head["VersionId"]
        s3.delete_object(Bucket=locked_bucket, Key=base + ".wav", VersionId=version)
    print(f"drain of one call took {took:.2f} s (process start included)")


def test_a_stereo_call_is_archived_as_its_wav_and_its_raw_stream_then_goes(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], s3: S3Client, locked_bucket: str,
) -> None:
    """The spool holds the raw stream MixMonitor wrote and the WAV callrec made of it: the WAV
    is archived (2 channels, the manifest's SHA-256), then both leave the spool."""
    assert bench.asterisk is not None
    start_callrec(CALLREC_RECORDING__STEREO="true",
                  CALLREC_RECORDING__STEREO_ON_8K_ONLY_PBX="true")
    number = unique_caller()
    caller.call("9001", hold_s=7.0, caller_user=number)
    [m] = manifests(number)
    assert m.recording is not None and m.recording.source_sha256
    spool = bench.asterisk.recordings
    raw, wav = spool / f"{m.call_id}.raw", spool / f"{m.call_id}.wav"
    assert raw.exists() and wav.exists()
    result = drain(bench, locked_bucket)
    assert result.returncode == 0, result.stdout + result.stderr
    key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.wav"
    body = s3.get_object(Bucket=locked_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == m.recording.sha256
    assert struct.unpack_from("<H", body, 22)[0] == 2  # WAV fmt chunk: channels
    assert hashlib.sha256(body[44:]).hexdigest() == m.recording.source_sha256
    assert not raw.exists() and not wav.exists()


def test_wrong_credentials_or_missing_bucket_keep_everything(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], locked_bucket: str,
) -> None:
    assert bench.asterisk is not None
    start_callrec()
    number = unique_caller()
    caller.call("9001", hold_s=6.0, caller_user=number)
    [m] = manifests(number)
    files = {p.name for p in bench.asterisk.recordings.iterdir() if m.call_id in p.name}
    assert {f"{m.call_id}.wav", f"{m.call_id}.json"} <= files
    bad = drain(bench, locked_bucket, CALLREC_S3__SECRET_KEY="wrong" * 8)
    assert bad.returncode == 1 and "refused the credentials" in bad.stderr
    assert "wrong" not in bad.stderr + bad.stdout
    missing = drain(bench, "no-such-bucket")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    after = {p.name for p in bench.asterisk.recordings.iterdir() if m.call_id in p.name}
    assert after == files  # nothing deleted
    assert drain(bench, locked_bucket).returncode == 0  # and it ships once S3 is right


def test_corrupt_manifest_and_tampered_recording_are_quarantined(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], locked_bucket: str,
) -> None:
    assert bench.asterisk is not None
    spool: Path = bench.asterisk.recordings
    start_callrec()
    number = unique_caller()
    caller.call("9001", hold_s=6.0, caller_user=number)
    [m] = manifests(number)
    wav = spool / f"{m.call_id}.wav"
    with wav.open("r+b") as f:  # one flipped byte after the header
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    (spool / "20261123T000000Z-000000000000.json").write_text("{not json")
    result = drain(bench, locked_bucket)
    assert result.returncode == 1
    quarantine = spool / "quarantine"
    assert (quarantine / f"{m.call_id}.wav").exists()
    assert "differs" in (quarantine / f"{m.call_id}.reason.json").read_text()
    assert (quarantine / "20261123T000000Z-000000000000.json").exists()


def test_large_recording_changed_on_disk_is_never_archived(
    bench: Bench, s3: S3Client, locked_bucket: str, spool: Path,
) -> None:
    """Multipart hashes while it uploads: a mismatch aborts before CompleteMultipartUpload, so no
    object (which Object Lock would keep forever) holds bytes the manifest does not vouch for."""
    m = fake_call(spool, 20)
    wav = spool / f"{m.call_id}.wav"
    with wav.open("r+b") as f:  # a flipped byte in the last part
        f.seek(19 << 20)
        byte = f.read(1)
        f.seek(19 << 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = drain(bench, locked_bucket, CALLREC_UPLOAD__SPOOL=str(spool),
                   CALLREC_UPLOAD__MULTIPART_THRESHOLD_MB="8")
    assert result.returncode == 1
    assert "differs" in (spool / "quarantine" / f"{m.call_id}.reason.json").read_text()
    assert (spool / "quarantine" / f"{m.call_id}.wav").exists()
    key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.wav"
    assert not s3.list_object_versions(Bucket=locked_bucket, Prefix=key).get("Versions")
    assert not s3.list_multipart_uploads(Bucket=locked_bucket).get("Uploads")


def archived_for(s3: S3Client, bucket: str, number: str) -> list[CallManifest]:
    found = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="recordings/").get("Contents", []):
        if obj["Key"].endswith(".json"):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            m = CallManifest.model_validate_json(body)
            if m.caller.number_raw == number:
                found.append(m)
    return found


def test_daemon_archives_new_calls_and_rides_out_an_s3_outage(
    bench: Bench, caller: Caller, start_callrec: StartApp, unique_caller: Callable[[], str],
    s3: S3Client, locked_bucket: str,
) -> None:
    from testbench.procs import Child

    asterisk, weed = bench.asterisk, bench.s3
    assert asterisk is not None and weed is not None
    start_callrec()
    env = uploader_env(bench, locked_bucket, CALLREC_UPLOAD__MAX_BACKOFF_S="2")
    daemon = Child("callrec-upload", [sys.executable, "-m", "callrec_cli", "upload"],
                   bench.log_dir / "callrec-upload.log", marker="callrec_cli", env=env)
    try:
        first = unique_caller()
        run = caller.call("9001", hold_s=5.0, caller_user=first)
        assert run.calls[0].bye is not None
        hung_up = time.monotonic()
        while not archived_for(s3, locked_bucket, first):
            assert time.monotonic() - hung_up < 20, "the daemon did not archive the call"
            time.sleep(0.1)
        print(f"hang-up -> archived (poll granularity 0.1 s): {time.monotonic() - hung_up:.2f} s")

        weed.stop()  # S3 goes away while calls keep coming
        outage = unique_caller()
        caller.call("9001", hold_s=3.0, count=4, rate=2.0, caller_user=outage)
        time.sleep(2)
        waiting = [p for p in asterisk.recordings.glob("*.json")
                   if outage in p.read_text(errors="replace")]
        assert len(waiting) == 4  # kept locally while S3 is down
        bench.restart_s3()
        deadline = time.monotonic() + 60
        while len(archived_for(s3, locked_bucket, outage)) < 4:
            assert time.monotonic() < deadline, "backlog not archived after S3 returned"
            time.sleep(0.5)
        assert not any(outage in p.read_text(errors="replace")
                       for p in asterisk.recordings.glob("*.json"))
        assert "next sweep in" in daemon.log_tail(200)  # backed off while S3 was away
        metrics = scrape(port_of(env))
        assert metric(metrics, "callrec_upload_archived_calls_total") >= 5
        assert metric(metrics, "callrec_upload_failures_total") >= 1
        assert metric(metrics, "callrec_upload_hangup_to_verified_seconds_count") >= 5
        assert metric(metrics, "callrec_upload_backlog_calls") >= 0
    finally:
        daemon.stop()



def test_large_recording_goes_multipart_and_survives_kill_9(
    bench: Bench, s3: S3Client, locked_bucket: str, spool: Path,
) -> None:
    assert bench.endpoints is not None
    m = fake_call(spool, 300)
    key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.wav"
    env_args = {"CALLREC_UPLOAD__SPOOL": str(spool), "CALLREC_UPLOAD__MULTIPART_THRESHOLD_MB": "8"}
    env = uploader_env(bench, locked_bucket, **env_args)
    killed = subprocess.Popen([sys.executable, "-m", "callrec_cli", "upload", "--drain"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not s3.list_multipart_uploads(Bucket=locked_bucket).get("Uploads"):
        assert time.monotonic() < deadline and killed.poll() is None, "no multipart upload seen"
        time.sleep(0.05)
    time.sleep(0.3)
    killed.kill()  # kill -9 in the middle of the multipart upload
    killed.wait()
    assert (spool / f"{m.call_id}.wav").exists()  # nothing local lost

    result = drain(bench, locked_bucket, **env_args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped mid-upload" in result.stderr  # the journal knew
    versions = s3.list_object_versions(Bucket=locked_bucket, Prefix=key).get("Versions", [])
    assert len(versions) == 1  # exactly one object for the recording
    head = s3.head_object(Bucket=locked_bucket, Key=key)
    assert head["ContentLength"] == 300 << 20 and head["Metadata"]["sha256"] == \
        (m.recording.sha256 if m.recording else None)
    assert not [u for u in s3.list_multipart_uploads(Bucket=locked_bucket).get("Uploads", [])
                if u["Key"] == key]  # the stale upload was aborted
    assert not (spool / f"{m.call_id}.wav").exists()


def test_the_store_refuses_a_part_whose_crc32_does_not_match(
    s3: S3Client, locked_bucket: str,
) -> None:
    """Multipart parts carry CRC32 (callrec/s3/multipart.py): only worth it if the store checks."""
    upload = s3.create_multipart_upload(Bucket=locked_bucket, Key="crc-check",
                                        ChecksumAlgorithm="CRC32")["UploadId"]
    try:
        data = b"recording" * 1000
        good = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        reply = s3.upload_part(Bucket=locked_bucket, Key="crc-check", UploadId=upload,
                               PartNumber=1, Body=data, ChecksumCRC32=good)
        assert reply["ChecksumCRC32"] == good
        with pytest.raises(ClientError) as refused:
            s3.upload_part(Bucket=locked_bucket, Key="crc-check", UploadId=upload, PartNumber=2,
                           Body=data[:-1] + b"X", ChecksumCRC32=good)
        assert refused.value.response["Error"]["Code"] in ("BadDigest", "InvalidRequest",
                                                           "XAmzContentChecksumMismatch")
    finally:
        s3.abort_multipart_upload(Bucket=locked_bucket, Key="crc-check", UploadId=upload)


def outcome_set(bench: Bench, bucket: str, spool: Path, *args: str
                ) -> subprocess.CompletedProcess[str]:
    """``callrec outcome set`` on the PBX host: its audit rows go to the catalog beside the
    spool (``outcome_audit``) and to the bucket."""
    env = uploader_env(bench, bucket, CALLREC_UPLOAD__SPOOL=str(spool),
                       CALLREC_ARCHIVE__CATALOG=str(spool.parent / "catalog.sqlite3"))
    return subprocess.run([sys.executable, "-m", "callrec_cli", "outcome", "set", *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def outcome_audit(spool: Path) -> list[tuple[str, str | None, dict[str, str]]]:
    catalog = SQLiteCatalog(spool.parent / "catalog.sqlite3", NumberingPlan())
    try:
        return [(r.action, r.call_id, json.loads(r.detail)) for r in catalog.audit_rows()]
    finally:
        catalog.close()


def test_outcome_set_after_archiving_retags_holds_and_versions(
    bench: Bench, s3: S3Client, locked_bucket: str, spool: Path,
) -> None:
    m = fake_call(spool, 1)
    assert drain(bench, locked_bucket, CALLREC_UPLOAD__SPOOL=str(spool)).returncode == 0
    base = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}"
    result = outcome_set(bench, locked_bucket, spool, m.call_id, "harassment", "--by", "sv1")
    assert result.returncode == 0, result.stderr
    tags = {t["Key"]: t["Value"] for t in
            s3.get_object_tagging(Bucket=locked_bucket, Key=base + ".wav")["TagSet"]}
    assert tags["outcome"] == "harassment"
    head = s3.head_object(Bucket=locked_bucket, Key=base + ".wav")
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    assert head["ObjectLockRetainUntilDate"].year >= m.entered_at.year + 9
    versions = s3.list_object_versions(Bucket=locked_bucket, Prefix=base + ".json")["Versions"]
    assert len(versions) == 2  # the original stays, locked; the change is a new version
    latest = CallManifest.model_validate_json(
        s3.get_object(Bucket=locked_bucket, Key=base + ".json")["Body"].read())
    assert (latest.outcome, latest.outcome_source) == ("harassment", "ops")
    assert [(c.previous, c.outcome, c.by) for c in latest.outcome_changes] == [
        ("completed", "harassment", "sv1")]
    assert outcome_audit(spool) == [("outcome", m.call_id, {
        "outcome": "harassment", "where": "archive", "by": "sv1", "previous": "completed"})]
    shipped = [json.loads(line) for obj in s3.list_objects_v2(
        Bucket=locked_bucket, Prefix="audit/").get("Contents", [])
        for line in s3.get_object(Bucket=locked_bucket, Key=obj["Key"])["Body"].iter_lines()]
    assert [(r["action"], r["call_id"], r["via"]) for r in shipped] == [
        ("outcome", m.call_id, "cli")]


def test_outcome_set_before_archiving_and_bad_input(
    bench: Bench, s3: S3Client, locked_bucket: str, spool: Path,
) -> None:
    m = fake_call(spool, 1)
    result = outcome_set(bench, locked_bucket, spool, m.call_id, "complaint")
    assert result.returncode == 0 and "spool" in result.stdout
    assert CallManifest.read(spool / f"{m.call_id}.json").outcome == "complaint"
    [(action, call_id, detail)] = outcome_audit(spool)
    assert (action, call_id, detail["where"], detail["outcome"]) == (
        "outcome", m.call_id, "spool", "complaint")
    bad = outcome_set(bench, locked_bucket, spool, m.call_id, "a&b=<x>")
    assert bad.returncode == 1 and "rejected" in bad.stderr
    unknown = outcome_set(bench, locked_bucket, spool, "../../etc/passwd", "complaint")
    assert unknown.returncode == 1 and "not a callrec call id" in unknown.stderr
    missing = outcome_set(bench, locked_bucket, spool, "20200101T000000Z-000000000000",
                          "complaint")
    assert missing.returncode == 1 and "neither in the spool nor archived" in missing.stderr
    # Every refusal is in the audit too, with its error (the bad id is refused before).
    refused = [(a, c, "error" in d) for a, c, d in outcome_audit(spool)[1:]]
    assert refused == [("outcome", m.call_id, True), ("outcome", "../../etc/passwd", True),
                       ("outcome", "20200101T000000Z-000000000000", True)]
    assert drain(bench, locked_bucket, CALLREC_UPLOAD__SPOOL=str(spool)).returncode == 0
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(
        Bucket=locked_bucket,
        Key=f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.wav")["TagSet"]}
    assert tags["outcome"] == "complaint"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """An empty spool of the test's own (the bench's is shared with the call flow)."""
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def tiny_spool(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a spool whose disk can be filled (the tests run as root for the bench)."""
    spool = tmp_path / "tiny"
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(spool)],
                   check=True)
    try:
        yield spool
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


def test_full_disk_is_said_and_shipping_frees_it(
    bench: Bench, s3: S3Client, locked_bucket: str, tiny_spool: Path,
) -> None:
    """The spool's disk is full: the journal cannot be written (said clearly, in the log and a
    metric), but shipping goes on - it is what frees the disk - and a file leaves only once S3
    shows its verified copy."""
    m = fake_call(tiny_spool, 1)
    filler = tiny_spool / ".filler"
    with filler.open("wb", buffering=0) as f:  # fill the disk to the last block
        try:
            while True:
                f.write(bytes(4096))
        except OSError:
            pass
    result = drain(bench, locked_bucket, CALLREC_UPLOAD__SPOOL=str(tiny_spool))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database or disk is full" in result.stderr and "shipping goes on" in result.stderr
    key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.wav"
    assert s3.head_object(Bucket=locked_bucket, Key=key)["Metadata"]["sha256"] == \
        (m.recording.sha256 if m.recording else None)
    assert not (tiny_spool / f"{m.call_id}.wav").exists()  # gone only after verification


def test_s3_down_30_s_while_50_recordings_arrive_none_lost(
    bench: Bench, s3: S3Client, locked_bucket: str, spool: Path,
) -> None:
    from testbench.procs import Child

    weed = bench.s3
    assert weed is not None
    env = uploader_env(bench, locked_bucket, CALLREC_UPLOAD__SPOOL=str(spool),
                       CALLREC_UPLOAD__MAX_BACKOFF_S="4")
    daemon = Child("callrec-upload-outage", [sys.executable, "-m", "callrec_cli", "upload"],
                   bench.log_dir / "callrec-upload-outage.log", marker="callrec_cli", env=env)
    try:
        deadline = time.monotonic() + 20
        while True:  # running: its metrics answer
            try:
                scrape(port_of(env))
                break
            except OSError:
                assert time.monotonic() < deadline and daemon.alive(), daemon.log_tail()
                time.sleep(0.1)
        weed.stop()
        outage_started = time.monotonic()
        calls: list[CallManifest] = []
        while time.monotonic() - outage_started < 30:  # 50 calls end during a 30 s outage
            if len(calls) < 50:
                calls.append(fake_call(spool, 0, size_kb=64))
            time.sleep(0.5)
        assert len(calls) == 50
        assert len(list(spool.glob("*.json"))) == 50  # all kept while S3 is away
        failures = metric(scrape(port_of(env)), "callrec_upload_failures_total")
        assert failures >= 1 and metric(scrape(port_of(env)), "callrec_upload_backlog_calls") == 50
        bench.restart_s3()
        deadline = time.monotonic() + 60
        while list(spool.glob("*.json")):
            assert time.monotonic() < deadline, "backlog not archived after S3 returned"
            time.sleep(0.5)
        for m in calls:  # each one archived, verified, exactly once
            key = f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}"
            versions = s3.list_object_versions(Bucket=locked_bucket, Prefix=key)["Versions"]
            assert sorted(v["Key"] for v in versions) == [key + ".json", key + ".wav"]
            head = s3.head_object(Bucket=locked_bucket, Key=key + ".wav")
            assert m.recording is not None and head["Metadata"]["sha256"] == m.recording.sha256
        assert not list(spool.glob("*.wav"))
    finally:
        daemon.stop()
        if weed.child is None or not weed.child.alive():
            bench.restart_s3()
