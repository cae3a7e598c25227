"""Webhooks of real calls: callrec ari and the uploader on one host share the outbox, one of
them delivers; the receiver (testbench/webhooks.py) verifies every signature as the spec says."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from callrec.manifest import CallManifest
from testbench.bench import Bench
from testbench.sipp import Caller
from testbench.webhooks import Receiver
from tests.helpers import StartApp, own_spool

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.down()


def pending(outbox: Path) -> list[Path]:
    return sorted((outbox / "hooks").glob("*.json"))


@pytest.mark.timeout(180)
def test_real_calls_reach_a_receiver_that_was_down_once_each_in_order(
    bench: Bench, caller: Caller, start_callrec: StartApp, s3: S3Client, locked_bucket: str,
    tmp_path: Path, manifests: Manifests, unique_caller: Callable[[], str], hooks: Receiver,
) -> None:
    assert bench.asterisk is not None
    outbox = tmp_path / "outbox"
    webhooks = {**hooks.env(), "CALLREC_WEBHOOKS__OUTBOX": str(outbox)}
    hooks.down()
    start_callrec(**webhooks)
    recorded, unrecorded = unique_caller(), unique_caller()
    caller.call("9001", hold_s=6.0, caller_user=recorded)
    caller.call("9006", hold_s=3.0, caller_user=unrecorded)
    [m1], [m2] = manifests(recorded), manifests(unrecorded)
    assert (m1.status, m2.status) == ("recorded", "unrecorded")
    assert len(pending(outbox)) == 1  # call.unrecorded, written before its manifest
    spool = own_spool(bench.asterisk.recordings, m1.call_id, tmp_path / "spool")
    own_spool(bench.asterisk.recordings, m2.call_id, spool)
    env = bench.service_env(locked_bucket, tmp_path, "hooks" + m1.call_id[-6:],
                            CALLREC_UPLOAD__SPOOL=str(spool), **webhooks)
    uploader = bench.start_uploader(env)
    try:
        deadline = time.monotonic() + 60
        while len(pending(outbox)) < 3:  # both calls archived: the receiver is still down
            assert time.monotonic() < deadline, pending(outbox)
            time.sleep(0.2)
        hooks.up()
        hooks.wait(3)
        time.sleep(1.5)  # several sender rounds: nothing comes twice
    finally:
        uploader.stop(timeout=30)
    assert len(hooks.deliveries) == 3 and len({d.id for d in hooks.deliveries}) == 3
    assert all(d.signatures == ("v1", "v1a") for d in hooks.deliveries)
    assert [d.type for d in hooks.of(m2.call_id)] == ["call.unrecorded", "call.archived"]
    [gone, archived2] = hooks.of(m2.call_id)
    assert gone.data["reason"] == "policy_never" and gone.data["caller"] == m2.caller.number
    assert archived2.data["recording_keys"] == [] and archived2.data["status"] == "unrecorded"
    [archived] = hooks.of(m1.call_id)
    data = archived.data
    assert archived.type == "call.archived" and data["bucket"] == locked_bucket
    assert m1.recording is not None and data["recording_sha256"] == m1.recording.sha256
    assert data["duration_s"] == m1.recording.duration_s and data["outcome"] == "completed"
    assert data["agent"] == "agent-answer" and data["status"] == "recorded"
    for key in [data["manifest_key"], *data["recording_keys"]]:
        assert s3.head_object(Bucket=locked_bucket, Key=key)["ContentLength"] > 0
    assert pending(outbox) == []


@pytest.mark.timeout(120)
def test_a_sender_killed_mid_delivery_loses_nothing(
    caller: Caller, start_callrec: StartApp, tmp_path: Path, manifests: Manifests,
    unique_caller: Callable[[], str], hooks: Receiver,
) -> None:
    outbox = tmp_path / "outbox"
    webhooks = {**hooks.env(), "CALLREC_WEBHOOKS__OUTBOX": str(outbox)}
    hooks.hang = True  # the receiver holds the request: callrec is mid-delivery
    first = start_callrec(**webhooks)
    assert first.child is not None
    number = unique_caller()
    caller.call("9006", hold_s=3.0, caller_user=number)
    [m] = manifests(number)
    deadline = time.monotonic() + 20
    while not hooks.arrived:
        assert time.monotonic() < deadline, "no delivery started"
        time.sleep(0.05)
    first.child.proc.kill()  # SIGKILL while the POST waits for its answer
    first.child.proc.wait()
    [held] = hooks.arrived
    assert len(pending(outbox)) == 1
    hooks.release()
    start_callrec(**webhooks)  # takes the lock the dead process held
    [delivery] = hooks.wait(1)
    assert delivery.id == held and delivery.type == "call.unrecorded"
    assert delivery.data["call_id"] == m.call_id
    deadline = time.monotonic() + 10
    while pending(outbox):
        assert time.monotonic() < deadline, pending(outbox)
        time.sleep(0.1)
