"""The bench itself, against the real parts: a pure-dialplan call and the S3 store's guarantees."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from botocore.exceptions import ClientError
from panoramisk import Manager

from testbench.audio import rms_dbfs, wait_complete
from testbench.bench import Bench
from testbench.endpoints import Endpoints
from testbench.s3 import S3Credentials, s3_client
from testbench.sipp import Caller

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def test_baseline_call_is_bridged_and_recorded(
    bench: Bench, caller: Caller, endpoints: Endpoints, unique_caller: Callable[[], str]
) -> None:
    """Answer -> MixMonitor -> Playback -> Dial(agent), pure dialplan: the performance baseline."""
    number = unique_caller()
    run = caller.call("baseline", hold_s=6.0, caller_user=number)
    assert run.returncode == 0, run.errors()
    [call] = run.calls
    assert call.final_status == 200
    assert call.hangup_by_us is True
    assert call.answer_ms is not None and call.answer_ms < 1000

    bridged = [c for c in bench.agents["answer"].calls() if number in c.from_header]
    assert len(bridged) == 1, "the agent phone did not get exactly one call from this caller"
    assert bridged[0].final_status == 200
    assert bridged[0].hangup_by_us is False  # the PBX hung up the agent after the caller left

    recording = Path(endpoints.spool) / "baseline" / f"{call.call_id}.wav"
    info = wait_complete(recording)
    assert info.rate == 8000
    sent = call.duration_s
    assert sent is not None
    # MixMonitor writes only while frames flow: the caller streams audio from ACK to BYE.
    assert abs(info.duration - sent) < 0.25, (info.duration, sent)
    assert rms_dbfs(recording, 1.5, sent - 0.5) > -30, "the recording is silent"


def test_caller_identity_reaches_the_agent(
    bench: Bench, caller: Caller, unique_caller: Callable[[], str]
) -> None:
    """The trunk can present any From user/display name; Asterisk passes them on to the agent."""
    number = unique_caller()
    run = caller.call("baseline", hold_s=1.5, caller_user=number + "&outcome=x",
                      caller_name="Yamada 山田 \U0001f600")
    assert run.returncode == 0, run.errors()
    [agent_call] = [c for c in bench.agents["answer"].calls() if number in c.from_header]
    assert "&outcome=x" in agent_call.from_header
    assert "Yamada" in agent_call.from_header


def test_busy_and_unanswered_agents(bench: Bench, caller: Caller) -> None:
    """The refusing and never-answering phones behave as their names say."""
    run = caller.call("dial-busy", hold_s=3.0)
    [call] = run.calls
    assert call.final_status == 200 and call.hangup_by_us is False  # dialplan hangs up
    assert any(c.final_status == 486 for c in bench.agents["busy"].calls())
    run = caller.call("dial-noanswer", hold_s=5.0)
    [call] = run.calls
    assert call.final_status == 200 and call.hangup_by_us is False
    assert any(c.final_status == 487 for c in bench.agents["noanswer"].calls())


async def test_ari_and_ami_answer_with_generated_credentials(
    ari: aiohttp.ClientSession, endpoints: Endpoints
) -> None:
    async with ari.get("/ari/asterisk/info") as response:
        assert response.status == 200
        info: dict[str, Any] = await response.json()
    assert info["system"]["version"].startswith("22.")
    wrong = aiohttp.encode_basic_auth(endpoints.asterisk.ari_user, "not-the-password")
    async with ari.get("/ari/asterisk/info", headers={"Authorization": wrong}) as response:
        assert response.status == 401

    manager = Manager(host=endpoints.ami_host, port=endpoints.ami_port,
                      username=endpoints.asterisk.ami_user,
                      secret=endpoints.asterisk.ami_secret, ping_delay=0)
    await asyncio.wait_for(manager.connect(), 5)
    try:
        for module in ("app_mixmonitor", "app_stasis", "res_ari", "app_queue", "res_pjsip"):
            reply = await asyncio.wait_for(
                manager.send_action({"Action": "ModuleCheck", "Module": module}), 5)
            assert reply.Response == "Success", (module, dict(reply))
    finally:
        manager.close()


def test_dialplan_includes_the_project_files(bench: Bench) -> None:
    assert bench.asterisk is not None
    shipped = sorted(p.name for p in (Path(__file__).parents[2] / "dialplan").glob("*.conf"))
    loaded = bench.asterisk.host_path(f"{bench.asterisk.home}/etc/callrec")
    assert shipped and sorted(p.name for p in loaded.glob("*.conf")) == shipped
    assert "baseline" in bench.asterisk.cli("dialplan show callrec-sandbox-inbound")


def _sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_object_lock_tags_and_checksum(s3: S3Client, locked_bucket: str) -> None:
    body = os.urandom(256 * 1024)
    until = datetime.now(UTC) + timedelta(days=1)
    tags = {"caller": "0312345678", "agent": "agent-answer", "outcome": "completed"}
    put = s3.put_object(
        Bucket=locked_bucket, Key="recordings/a.wav", Body=body,
        ChecksumSHA256=_sha256_b64(body), Tagging=urllib.parse.urlencode(tags),
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
        Metadata={"call-id": "a"},
    )
    version = put["VersionId"]
    head = s3.head_object(Bucket=locked_bucket, Key="recordings/a.wav", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == _sha256_b64(body)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["Metadata"] == {"call-id": "a"}
    got = s3.get_object_tagging(Bucket=locked_bucket, Key="recordings/a.wav")["TagSet"]
    assert {t["Key"]: t["Value"] for t in got} == tags

    with pytest.raises(ClientError):
        s3.delete_object(Bucket=locked_bucket, Key="recordings/a.wav", VersionId=version)
    again = s3.get_object(Bucket=locked_bucket, Key="recordings/a.wav", VersionId=version)
    assert again["Body"].read() == body

    with pytest.raises(ClientError, match="(?i)digest|checksum"):
        s3.put_object(Bucket=locked_bucket, Key="recordings/bad.wav", Body=body,
                      ChecksumSHA256=_sha256_b64(b"something else"))


def test_filer_port_cannot_bypass_object_lock(
    bench: Bench, s3: S3Client, locked_bucket: str
) -> None:
    """weed's filer HTTP port has no S3 auth: the JWT keys in security.toml must close it."""
    s3.put_object(Bucket=locked_bucket, Key="held.wav", Body=b"x" * 1024,
                  ChecksumSHA256=_sha256_b64(b"x" * 1024), ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1))
    filer = f"http://127.0.0.1:{bench.ports.s3 + 555}/buckets/{locked_bucket}/held.wav"
    request = urllib.request.Request(filer, method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    refused.value.close()
    assert refused.value.code in (401, 403)
    assert s3.head_object(Bucket=locked_bucket, Key="held.wav")["ContentLength"] == 1024


def test_wrong_secret_is_refused(endpoints: Endpoints) -> None:
    bad = s3_client(endpoints.s3_endpoint, S3Credentials(endpoints.s3.access_key, "wrong" * 8))
    with closing(bad), pytest.raises(ClientError) as refused:
        bad.list_buckets()
    assert refused.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied")
    unknown = s3_client(endpoints.s3_endpoint, S3Credentials("nobody", endpoints.s3.secret_key))
    with closing(unknown), pytest.raises(ClientError):
        unknown.list_buckets()
