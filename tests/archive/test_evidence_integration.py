"""Evidence for real: calls through the real PBX, sealed by ``callrec ari``, shipped and
checkpointed by the ``callrec upload`` daemon into SeaweedFS; ``callrec archive verify`` finds
every kind of tampering; a bundle checks out with sha256sum and openssl alone."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from archive.catalog import AuditFilter
from archive.catalog.sqlite import SQLiteCatalog
from callrec.manifest import CallManifest
from callrec.numbering import NumberingPlan
from testbench.bench import Bench
from testbench.sipp import Caller
from tests.helpers import StartApp, call_with_keys, callrec_cli, evidence_env, sealing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
# Shell, HTML and line breaks: must never reach the README's commands.
HOSTILE_NAME = "'; touch /tmp/callrec-pwned; echo '<b>x</b>"


@pytest.fixture
def host() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def env(bench: Bench, locked_bucket: str, tmp_path: Path, host: str) -> dict[str, str]:
    return evidence_env(bench, locked_bucket, tmp_path, host)


@pytest.fixture
def uploader(bench: Bench, env: dict[str, str]) -> Iterator[None]:
    """The uploader daemon (checkpoints every second); stopped (a last checkpoint) after."""
    child = bench.start_uploader(env)
    yield
    child.stop(timeout=30)


def key_of(call_id: str, ext: str) -> str:
    return f"recordings/{call_id[:4]}/{call_id[4:6]}/{call_id[6:8]}/{call_id}.{ext}"


def verify(env: dict[str, str], *extra: str) -> tuple[int, dict[str, Any]]:
    result = callrec_cli(env, "archive", "verify", "--host", env["CALLREC_EVIDENCE__HOST"],
                         "--json", *extra)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def archived(env: dict[str, str], s3: S3Client, number: str, count: int,
             timeout: float = 60) -> list[CallManifest]:
    """The test's calls once all ``count`` are in the bucket and a checkpoint covers them."""
    bucket = env["CALLREC_S3__BUCKET"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix="recordings/"):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".json"):
                    m = CallManifest.model_validate_json(
                        s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                    if m.caller.number_raw == number:
                        found.append(m)
        if len(found) == count:
            code, report = verify(env)
            if report["totals"]["verified"] == count:
                return sorted(found, key=lambda m: m.chain.seq if m.chain else 0)
        time.sleep(0.5)
    raise AssertionError(f"{count} call(s) of {number} not archived and checkpointed")


def put_version(s3: S3Client, bucket: str, key: str, body: bytes,
                metadata: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata,
                  ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())


def test_sealed_calls_verify_and_every_kind_of_tampering_is_detected(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str], uploader: None,
    s3: S3Client, unique_caller: Callable[[], str],
) -> None:
    start_callrec(**sealing(env))
    number = unique_caller()
    caller.call("9001", hold_s=3.0, count=5, rate=2.0, caller_user=number)
    calls = archived(env, s3, number, 5)
    code, report = verify(env)
    assert code == 0 and report["ok"] and report["totals"]["verified"] == 5
    assert [m.chain.seq for m in calls if m.chain] == [1, 2, 3, 4, 5]
    bucket = env["CALLREC_S3__BUCKET"]
    flipped, edited, resigned, deleted, intact = (m.call_id for m in calls)

    # One byte of a recording (a new version: Object Lock keeps the original beside it).
    wav = bytearray(s3.get_object(Bucket=bucket, Key=key_of(flipped, "wav"))["Body"].read())
    wav[len(wav) // 2] ^= 0x01
    put_version(s3, bucket, key_of(flipped, "wav"), bytes(wav), {})
    # One byte of a manifest, its signature copied along.
    got = s3.get_object(Bucket=bucket, Key=key_of(edited, "json"))
    body = bytearray(got["Body"].read())
    body[body.index(b'"outcome": "') + 12] ^= 0x01
    put_version(s3, bucket, key_of(edited, "json"), bytes(body), got["Metadata"])
    # One byte of a signature.
    got = s3.get_object(Bucket=bucket, Key=key_of(resigned, "json"))
    signature = bytearray(base64.b64decode(got["Metadata"]["signature"]))
    signature[0] ^= 0x01
    put_version(s3, bucket, key_of(resigned, "json"), got["Body"].read(),
                {**got["Metadata"], "signature": base64.b64encode(signature).decode()})
    # A whole call removed by someone allowed to bypass GOVERNANCE retention.
    for prefix in (key_of(deleted, "json"), key_of(deleted, "wav")):
        for v in s3.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"],
                             BypassGovernanceRetention=True)
    # ... who cannot remove the checkpoints: they are under COMPLIANCE.
    checkpoints = s3.list_object_versions(Bucket=bucket, Prefix="evidence/chains/")["Versions"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=checkpoints[0]["Key"],
                         VersionId=checkpoints[0]["VersionId"], BypassGovernanceRetention=True)

    code, report = verify(env)
    assert code == 1 and not report["ok"]
    problems = {(p["kind"], p["call_id"]) for p in report["problems"]}
    assert problems == {("altered", flipped), ("altered", edited), ("altered", resigned),
                        ("missing", deleted)}
    assert report["totals"]["verified"] == 1
    assert {r["chain"] for r in report["rows"]} == {env["CALLREC_EVIDENCE__HOST"]}
    assert intact not in {p["call_id"] for p in report["problems"]}
    # --deep reads the recordings too: the same findings.
    code, deep = verify(env, "--deep")
    assert code == 1 and deep["totals"] == report["totals"]


def test_key_rotation_keeps_old_manifests_verifiable(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str], uploader: None,
    s3: S3Client, unique_caller: Callable[[], str],
) -> None:
    start_callrec(**sealing(env))
    number = unique_caller()
    caller.call("9001", hold_s=2.0, caller_user=number)
    [before] = archived(env, s3, number, 1)
    rotated = callrec_cli(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    caller.call("9001", hold_s=2.0, caller_user=number)  # the running callrec follows it
    calls = archived(env, s3, number, 2)
    assert calls[0].call_id == before.call_id
    keys = [m.chain.key for m in calls if m.chain]
    assert len(set(keys)) == 2
    published = {o["Key"] for o in s3.list_objects_v2(
        Bucket=env["CALLREC_S3__BUCKET"], Prefix="evidence/keys/")["Contents"]}
    assert published == {f"evidence/keys/{k}.pem" for k in keys}
    code, report = verify(env)
    assert code == 0 and report["totals"]["verified"] == 2


def test_a_bundle_checks_out_with_standard_tools_and_tampering_shows(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str], uploader: None,
    s3: S3Client, unique_caller: Callable[[], str], tmp_path: Path,
) -> None:
    start_callrec(**sealing(env))
    number = unique_caller()
    caller.call("9001", hold_s=2.0, count=2, rate=2.0, caller_user=number,
                caller_name=HOSTILE_NAME)
    first, second = (m.call_id for m in archived(env, s3, number, 2))
    changed = callrec_cli(env, "archive", "outcome", first, "harassment")
    assert changed.returncode == 0, changed.stderr  # a second version, in the archive chain
    bundle = tmp_path / "case.zip"
    exported = callrec_cli(env, "archive", "export", first, second, "--to", str(bundle))
    assert exported.returncode == 0, exported.stderr
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert digest in exported.stdout

    # A third party: a clean directory, the README's commands as written, standard tools only.
    clean = tmp_path / "clean"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(clean)
    readme = (clean / "README.txt").read_text()
    commands = [line[2:] for line in readme.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 1 + 2 * (3 + 1) + 2 * 2  # sums; 3 versions x (sig, cp sig, grep)
    for command in commands:
        ran = subprocess.run(["bash", "-e", "-c", command], cwd=clean, capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
    assert HOSTILE_NAME not in readme and "touch" not in readme
    index = json.loads((clean / "index.json").read_text())
    assert {c["caller_name_raw"] for c in index["calls"]} == {HOSTILE_NAME}
    assert not Path("/tmp/callrec-pwned").exists()
    assert callrec_cli(env, "verify-bundle", str(bundle)).returncode == 0
    versions = [v for c in index["calls"] for v in c["versions"]]
    assert len(versions) == 3 and all(v["checkpoint"] for v in versions)

    # One byte of the recording changed: the README's own commands fail, and so does callrec.
    wav = clean / "calls" / second / "recording.wav"
    data = bytearray(wav.read_bytes())
    data[len(data) // 2] ^= 0x01
    wav.write_bytes(bytes(data))
    failed = [c for c in commands if subprocess.run(
        ["bash", "-e", "-c", c], cwd=clean, capture_output=True, check=False).returncode]
    assert "sha256sum -c SHA256SUMS" in failed and any(str(wav.relative_to(clean)) in c
                                                        for c in failed)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for path in sorted(p for p in clean.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(clean).as_posix())
    checked = callrec_cli(env, "verify-bundle", str(tampered))
    assert checked.returncode == 1 and "recording.wav" in checked.stderr

    # Exports and verifications are audited; the archive itself is unchanged by them.
    code, after = verify(env)
    assert code == 0, [p["detail"] for p in after["problems"]]
    catalog = SQLiteCatalog(Path(env["CALLREC_ARCHIVE__CATALOG"]), NumberingPlan())
    try:
        rows = catalog.audit_page(AuditFilter(action="evidence"))
        verified = catalog.audit_page(AuditFilter(action="verify"))
    finally:
        catalog.close()
    assert {r.call_id for r in rows} == {first, second}
    assert all(json.loads(r.detail)["bundle_sha256"] == digest for r in rows)
    assert verified and json.loads(verified[0].detail)["ok"] is True
    shutil.rmtree(clean)


def test_a_paused_calls_bundle_explains_its_silent_span(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str], uploader: None,
    s3: S3Client, unique_caller: Callable[[], str], tmp_path: Path,
) -> None:
    """A card payment paused by the agent's *5/*6: the signed manifest in the bundle lists the
    pause where the recording is silent, and the bundle verifies."""
    start_callrec(**sealing(env))
    number = unique_caller()
    call_with_keys(bench, caller, lambda n: archived(env, s3, n, 1), number,
                   [(2.0, "*5"), (9.0, "*6")])
    [m] = archived(env, s3, number, 1)
    [pause] = m.pauses
    assert pause.resume_proven and pause.offset_s is not None and pause.end_offset_s
    bundle = tmp_path / "case.zip"
    exported = callrec_cli(env, "archive", "export", m.call_id, "--to", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert callrec_cli(env, "verify-bundle", str(bundle)).returncode == 0
    with zipfile.ZipFile(bundle) as zf:
        names = [n for n in zf.namelist()
                 if n.startswith(f"calls/{m.call_id}/manifest.v") and n.endswith(".json")]
        sealed = [CallManifest.model_validate_json(zf.read(n)) for n in names]
    assert sealed and all(v.pauses == m.pauses and v.chain is not None for v in sealed)
