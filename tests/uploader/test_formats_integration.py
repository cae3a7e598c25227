"""Archive formats for real: calls through the real PBX archived by the ``callrec upload``
daemon into SeaweedFS as Ogg Opus or FLAC (uploader/formats.py), verified by ``callrec archive
verify``; a kill -9 in the middle of a transcode loses nothing and archives one object."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
import uuid
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import pytest

from callrec.manifest import AudioFormat, CallManifest
from testbench.bench import Bench
from testbench.sipp import Caller
from testbench.spool import sounding_call
from tests.helpers import StartApp, callrec_cli, evidence_env, own_spool, sealing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def key_of(m: CallManifest, ext: str) -> str:
    return f"recordings/{m.entered_at:%Y/%m/%d}/{m.call_id}.{ext}"


def decoded(body: bytes) -> tuple[float, np.ndarray[Any, Any]]:
    """Duration (s) and the samples (channels x frames, float) of an archived object."""
    chunks = []
    with av.open(io.BytesIO(body), "r") as container:
        for frame in container.decode(audio=0):
            data = frame.to_ndarray()
            channels = len(frame.layout.channels)
            # Packed formats (FLAC's s16) interleave the channels in one row; planar (Opus's
            # fltp) give a row each.
            chunks.append(data if frame.format.is_planar else data.reshape(-1, channels).T)
        rate = container.streams.audio[0].sample_rate
    samples = np.concatenate(chunks, axis=1).astype(float)
    return samples.shape[1] / rate, samples


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (/proc/<pid>/stat: the 4th field)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def versions(s3: S3Client, bucket: str, key: str) -> list[dict[str, Any]]:
    found = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    return [dict(v) for v in found if v["Key"] == key]


def archived_call(s3: S3Client, bucket: str, m: CallManifest, env: dict[str, str],
                  timeout: float = 60) -> CallManifest:
    """The call's newest manifest once it names the transcode and verify counts the call."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket=bucket, Key=key_of(m, "json"))["Body"].read()
        except s3.exceptions.NoSuchKey:
            body = b""
        latest = CallManifest.model_validate_json(body) if body else None
        if latest is not None and latest.recording and latest.recording.archived:
            result = callrec_cli(env, "archive", "verify", "--host",
                                 env["CALLREC_EVIDENCE__HOST"])
            if result.returncode == 0:
                return latest
        time.sleep(0.5)
    raise AssertionError(f"{m.call_id} not archived in its format and verified")


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("fmt", "keep"), [(AudioFormat.OPUS, False), (AudioFormat.FLAC, True)])
def test_a_real_stereo_call_is_archived_transcoded_and_verifies(
    bench: Bench, caller: Caller, start_callrec: StartApp, s3: S3Client, locked_bucket: str,
    tmp_path: Path, manifests: Callable[..., list[CallManifest]],
    unique_caller: Callable[[], str], fmt: AudioFormat, keep: bool,
) -> None:
    """The object decodes to the recording's length with both parties apart; the manifest
    keeps the WAV's SHA-256 (signed by the call flow) beside the object's (signed by the
    uploader); verify counts the call verified, the spool is left empty."""
    assert bench.asterisk is not None
    host = "f" + uuid.uuid4().hex[:10]
    env = evidence_env(bench, locked_bucket, tmp_path, host, CALLREC_UPLOAD__FORMAT=fmt.value,
                       CALLREC_UPLOAD__KEEP_ORIGINAL=str(keep).lower(),
                       CALLREC_RETENTION__OUTCOMES=json.dumps(
                           {"harassment": {"legal_hold": True, "retention_days": 2}}))
    start_callrec(**sealing(env), CALLREC_RECORDING__STEREO="true",
                  CALLREC_RECORDING__STEREO_ON_8K_ONLY_PBX="true")
    number = unique_caller()
    caller.call("9001", hold_s=6.0, caller_user=number)
    [m] = manifests(number)
    assert m.recording is not None and m.recording.duration_s and m.recording.sha256
    assert m.recording.size
    # This call only: the bench's spool holds what earlier tests left (sealed by other hosts),
    # which this uploader would archive too, under its own archive chain.
    spool = own_spool(bench.asterisk.recordings, m.call_id, tmp_path / "spool")
    env.update(CALLREC_UPLOAD__SPOOL=str(spool), CALLREC_ARCHIVE__SPOOL=str(spool))
    uploader = bench.start_uploader(env)
    try:
        latest = archived_call(s3, locked_bucket, m, env)
    finally:
        uploader.stop(timeout=30)
    rec = latest.recording
    assert rec is not None and rec.archived is not None
    assert rec.sha256 == m.recording.sha256 and rec.archived.format is fmt  # both SHA-256s
    body = s3.get_object(Bucket=locked_bucket, Key=key_of(m, fmt.value))["Body"].read()
    assert hashlib.sha256(body).hexdigest() == rec.archived.sha256
    assert len(body) == rec.archived.size < m.recording.size / (8 if fmt is AudioFormat.OPUS
                                                                else 1.2)
    seconds, samples = decoded(body)
    assert abs(seconds - m.recording.duration_s) <= 0.02, (seconds, m.recording.duration_s)
    assert samples.shape[0] == 2  # still the customer and what they heard, apart
    assert not np.allclose(samples[0], samples[1], atol=1e-3)
    assert len(versions(s3, locked_bucket, key_of(m, "json"))) == 2  # call flow's + uploader's
    assert latest.chain is not None and latest.chain.chain == f"{host}.archive"
    wav = versions(s3, locked_bucket, key_of(m, "wav"))
    assert len(wav) == (1 if keep else 0) and rec.archived.original_kept is keep
    assert not [p for p in spool.iterdir() if p.name.split(".")[0] == m.call_id
                or p.name.startswith(f".{m.call_id}")]
    the_archive_serves_the_format(env, s3, locked_bucket, latest, tmp_path)


def the_archive_serves_the_format(env: dict[str, str], s3: S3Client, bucket: str,
                                  m: CallManifest, tmp: Path) -> None:
    """Download, outcome change (tags and legal hold on every recording object), evidence
    bundle (its README's commands, by standard tools) and verify, on the archived format."""
    assert m.recording is not None and m.recording.archived is not None
    fmt = m.recording.archived.format
    assert callrec_cli(env, "archive", "sync").returncode == 0
    got = callrec_cli(env, "archive", "get", m.call_id, "--to", str(tmp / "got"))
    assert got.returncode == 0, got.stderr
    fetched = (tmp / "got" / f"{m.call_id}.{fmt.value}").read_bytes()
    assert hashlib.sha256(fetched).hexdigest() == m.recording.archived.sha256
    changed = callrec_cli(env, "archive", "outcome", m.call_id, "harassment")
    assert changed.returncode == 0, changed.stderr
    for ext in [fmt.value] + (["wav"] if m.recording.archived.original_kept else []):
        tags = s3.get_object_tagging(Bucket=bucket, Key=key_of(m, ext))["TagSet"]
        assert {"Key": "outcome", "Value": "harassment"} in tags
        hold = s3.get_object_legal_hold(Bucket=bucket, Key=key_of(m, ext))["LegalHold"]
        assert hold["Status"] == "ON"
    bundle = tmp / "case.zip"
    exported = callrec_cli(env, "archive", "export", m.call_id, "--to", str(bundle))
    assert exported.returncode == 0, exported.stderr
    clean = tmp / "clean"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(clean)
        names = zf.namelist()
    assert f"calls/{m.call_id}/recording.{fmt.value}" in names
    commands = [line[2:] for line in (clean / "README.txt").read_text().splitlines()
                if line.startswith("$ ")]
    assert any(f"recording.{fmt.value}" in c for c in commands)
    for command in commands:
        ran = subprocess.run(["bash", "-e", "-c", command], cwd=clean, capture_output=True,
                             text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
    assert callrec_cli(env, "verify-bundle", str(bundle)).returncode == 0
    verified = callrec_cli(env, "archive", "verify", "--host", env["CALLREC_EVIDENCE__HOST"],
                           "--deep")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.timeout(240)
def test_kill_9_in_the_middle_of_a_transcode_loses_nothing_and_archives_one_object(
    bench: Bench, s3: S3Client, locked_bucket: str, tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    m = sounding_call(spool, 40 * 60)  # 40 minutes: some seconds of encoding
    assert m.recording is not None and m.recording.duration_s
    env = evidence_env(bench, locked_bucket, tmp_path, "k" + uuid.uuid4().hex[:10],
                       CALLREC_UPLOAD__SPOOL=str(spool), CALLREC_UPLOAD__FORMAT="opus")
    def half_made() -> bool:  # a worker's temporary file (.<id>.opus.<pid>.tmp), growing
        return any(p.stat().st_size > 100_000 for p in spool.glob(f".{m.call_id}.opus.*.tmp"))

    killed = subprocess.Popen([sys.executable, "-m", "callrec_cli", "upload", "--drain"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not half_made():
        assert time.monotonic() < deadline and killed.poll() is None, "no transcode seen"
        time.sleep(0.05)
    workers = children(killed.pid)
    assert workers  # the transcode runs in a worker process
    killed.kill()  # kill -9 half-way through the encoding
    killed.wait()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in workers):  # they die with it
        assert time.monotonic() < deadline, "a transcoding worker outlived the uploader"
        time.sleep(0.1)
    assert (spool / f"{m.call_id}.wav").read_bytes()  # nothing local lost
    assert not (spool / f"{m.call_id}.opus").exists()  # no half file under the final name
    assert not versions(s3, locked_bucket, key_of(m, "opus"))  # nothing archived half-made

    result = callrec_cli(env, "upload", "--drain", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    [opus] = versions(s3, locked_bucket, key_of(m, "opus"))  # exactly one object
    assert len(versions(s3, locked_bucket, key_of(m, "json"))) == 2
    latest = CallManifest.model_validate_json(
        s3.get_object(Bucket=locked_bucket, Key=key_of(m, "json"))["Body"].read())
    assert latest.recording is not None and latest.recording.archived is not None
    assert latest.recording.archived.size == opus["Size"]
    assert latest.recording.sha256 == m.recording.sha256
    seconds, _ = decoded(s3.get_object(Bucket=locked_bucket, Key=key_of(m, "opus"))["Body"]
                         .read())
    assert abs(seconds - m.recording.duration_s) <= 0.02
    assert not versions(s3, locked_bucket, key_of(m, "wav"))
    assert not [p.name for p in spool.iterdir() if m.call_id in p.name]  # the tmp too


@pytest.mark.timeout(120)
def test_a_restart_after_both_versions_puts_nothing_again(
    bench: Bench, s3: S3Client, locked_bucket: str, tmp_path: Path,
) -> None:
    """Killed after the uploader's version went up but before the spool was cleaned: the
    next run sees its version (``supersedes``) and archives nothing twice."""
    spool = tmp_path / "spool"
    spool.mkdir()
    m = sounding_call(spool, 20, stereo=True)
    kept = tmp_path / "kept"
    shutil.copytree(spool, kept)
    env = evidence_env(bench, locked_bucket, tmp_path, "r" + uuid.uuid4().hex[:10],
                       CALLREC_UPLOAD__SPOOL=str(spool), CALLREC_UPLOAD__FORMAT="flac")
    assert callrec_cli(env, "upload", "--drain").returncode == 0
    for path in kept.iterdir():  # the spool as the kill left it
        shutil.copy2(path, spool / path.name)
    again = callrec_cli(env, "upload", "--drain")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(versions(s3, locked_bucket, key_of(m, "json"))) == 2
    assert len(versions(s3, locked_bucket, key_of(m, "flac"))) == 1
    assert not (spool / f"{m.call_id}.json").exists()


@pytest.mark.timeout(120)
def test_a_recording_that_cannot_be_transcoded_is_archived_as_its_wav(
    bench: Bench, s3: S3Client, locked_bucket: str, tmp_path: Path,
) -> None:
    """An 8-bit WAV (not what MixMonitor writes, but a file on the spool all the same): the
    transcode refuses it and the WAV is archived as it is."""
    spool = tmp_path / "spool"
    spool.mkdir()
    m = sounding_call(spool, 3)
    assert m.recording is not None
    wav = spool / f"{m.call_id}.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * 100)
    recording = m.recording.model_copy(update={"size": wav.stat().st_size,
                                               "sha256": hashlib.sha256(wav.read_bytes())
                                               .hexdigest()})
    m.model_copy(update={"recording": recording}).write_atomic(spool)
    env = evidence_env(bench, locked_bucket, tmp_path, "w" + uuid.uuid4().hex[:10],
                       CALLREC_UPLOAD__SPOOL=str(spool), CALLREC_UPLOAD__FORMAT="opus")
    result = callrec_cli(env, "upload", "--drain")
    assert result.returncode == 0, result.stdout + result.stderr
    [only] = versions(s3, locked_bucket, key_of(m, "json"))
    latest = CallManifest.model_validate_json(
        s3.get_object(Bucket=locked_bucket, Key=key_of(m, "json"))["Body"].read())
    assert latest.recording is not None and latest.recording.archived is None
    body = s3.get_object(Bucket=locked_bucket, Key=key_of(m, "wav"))["Body"].read()
    assert hashlib.sha256(body).hexdigest() == recording.sha256
    assert not versions(s3, locked_bucket, key_of(m, "opus"))
    assert not [p.name for p in spool.iterdir() if m.call_id in p.name]
