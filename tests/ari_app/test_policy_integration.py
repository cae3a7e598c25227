"""When recording cannot start, the notice is NOT played and the policy decides; the manifest
says why. And when callrec is down, the shipped dialplan never plays a notice either."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ari_app.closewatch import writer_open
from callrec.manifest import CallManifest
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.procs import free_port
from testbench.proxy import CuttingProxy
from testbench.sipp import Caller
from tests.helpers import (
    BROKEN_SPOOL,
    StartApp,
    assert_no_notice,
    metric,
    scrape,
    wait_bridged,
)

pytestmark = pytest.mark.integration

Manifests = Callable[..., list[CallManifest]]
# MixMonitor's AMI action answers Success even when it cannot open its file: a spool path that
# does not exist inside the PBX is exactly that case (app_mixmonitor.c opens it in its thread).


@pytest.mark.parametrize("did", ["9001", "8001"], ids=["stasis", "agi"])
def test_unverifiable_recording_optional_policy_continues_without_notice(
    did: str, bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    start_callrec(**BROKEN_SPOOL)
    number = unique_caller()
    run = caller.call(did, hold_s=4.0, caller_user=number)
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    assert m.status == "unrecorded" and m.status_reason == "mixmonitor_unverified"
    assert m.policy == "optional" and m.recording is None
    assert m.outcome == "completed"  # the call went on to the agent, unannounced and unrecorded
    assert_no_notice(m, bench)


@pytest.mark.parametrize("did", ["9005", "8005"], ids=["stasis", "agi"])
def test_unverifiable_recording_force_policy_rejects_the_call(
    did: str, bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    start_callrec(**BROKEN_SPOOL)
    number = unique_caller()
    run = caller.call(did, hold_s=15.0, caller_user=number)
    [call] = run.calls
    assert call.hangup_by_us is False  # callrec apologised and hung up
    assert call.duration_s is not None and call.duration_s < 10
    [m] = manifests(number)
    assert m.policy == "force" and m.outcome == "failed"
    assert m.status == "unrecorded" and m.status_reason == "mixmonitor_unverified"
    assert bench.asterisk is not None and m.asterisk_channel
    assert bench.asterisk.played(m.asterisk_channel, "callrec/unavailable")
    assert_no_notice(m, bench)
    assert not any(number in c.from_header for c in bench.agents["answer"].calls())


@pytest.mark.parametrize("did", ["9001", "8001"], ids=["stasis", "agi"])
def test_ami_unreachable_calls_go_on_unrecorded_and_unannounced(
    did: str, bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """callrec starts although AMI is unreachable (it keeps retrying): with no way to start a
    recording, calls follow their policy from the preflight, and no notice is played."""
    port = free_port()
    start_callrec(CALLREC_AMI__PORT=str(free_port()), CALLREC_METRICS__PORT=str(port))
    number = unique_caller()
    run = caller.call(did, hold_s=4.0, caller_user=number)
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    assert m.status == "unrecorded" and m.status_reason == "ami_unavailable"
    assert m.recording is None and m.outcome == "completed"
    assert_no_notice(m, bench)
    assert metric(scrape(port), "callrec_ami_connected") == 0


def test_a_mixmonitor_whose_reply_was_lost_does_not_record_on_unannounced(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """AMI drops right after the MixMonitor action: Asterisk started it, callrec never heard.
    No notice, the call goes on unrecorded - and that MixMonitor is stopped once AMI is back,
    not left recording a call whose caller was not told and that no manifest describes."""
    assert bench.endpoints is not None and bench.asterisk is not None
    spool = bench.asterisk.recordings
    number = unique_caller()
    with CuttingProxy(bench.endpoints.ami_port, cut_after=b"Action: MixMonitor") as cutter:
        port = free_port()
        start_callrec(CALLREC_AMI__PORT=str(cutter.port), CALLREC_METRICS__PORT=str(port))
        before = set(spool.glob("*.wav"))
        with ThreadPoolExecutor(1) as pool:
            ongoing = pool.submit(caller.call, "9001", hold_s=9.0, caller_user=number)
            wait_bridged(bench, number)
            assert cutter.pattern_cut
            [fragment] = set(spool.glob("*.wav")) - before  # Asterisk did start it
            assert writer_open(fragment) is False  # stopped while the call goes on
            ongoing.result(timeout=60)
    [m] = manifests(number)
    assert m.status == "unrecorded" and m.status_reason == "mixmonitor_refused"
    assert m.outcome == "completed"
    assert_no_notice(m, bench)
    assert metric(scrape(port), "callrec_unverified_mixmonitors_stopped_total") == 1


def test_spool_full_is_refused_before_recording(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    start_callrec(CALLREC_SPOOL__MIN_FREE_MB="100000000")
    number = unique_caller()
    caller.call("9001", hold_s=3.0, caller_user=number)
    [m] = manifests(number)
    assert m.status == "unrecorded" and m.status_reason == "spool_full"
    assert_no_notice(m, bench)


def test_policy_never(
    bench: Bench, caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call("9006", hold_s=3.0, caller_user=number)
    [m] = manifests(number)
    assert m.status == "unrecorded" and m.status_reason == "policy_never"
    assert m.outcome == "completed"
    assert_no_notice(m, bench)


def test_callrec_down_dialplan_fallback(
    bench: Bench, caller: Caller, unique_caller: Callable[[], str],
) -> None:
    """No callrec process: Stasis() fails, the shipped dialplan continues without a notice."""
    assert bench.asterisk is not None
    before = set(bench.asterisk.recordings.iterdir())
    number = unique_caller()
    run = caller.call("9001", hold_s=3.0, caller_user=number)
    assert run.calls[0].final_status == 200 and run.calls[0].hangup_by_us is True
    [agent_call] = [c for c in bench.agents["answer"].calls() if number in c.from_header]
    assert agent_call.final_status == 200  # optional: continued unrecorded to the agent
    via_agi = unique_caller()  # the FastAGI door with nobody listening: AGISTATUS=FAILURE
    run = caller.call("8001", hold_s=3.0, caller_user=via_agi)
    assert run.calls[0].final_status == 200
    assert any(via_agi in c.from_header and c.final_status == 200
               for c in bench.agents["answer"].calls())
    forced = unique_caller()
    run = caller.call("7001", hold_s=15.0, caller_user=forced)
    assert run.calls[0].hangup_by_us is False  # CALLREC_DOWN_POLICY=force: apology, hang-up
    assert not any(forced in c.from_header for c in bench.agents["answer"].calls())
    assert set(bench.asterisk.recordings.iterdir()) == before  # nothing recorded, no manifest
    assert "callrec unavailable" in bench.asterisk.log_text()


HOSTILE: list[tuple[str | bytes, str | bytes]] = [
    ("../../etc/x", "../../etc/passwd"),
    ("a&outcome=x", "a&outcome=x"),
    ("0312345678", "<script>alert(1)</script>"),
    ("+81-3-1234-5678", "\u202eevil\u202c \U0001f600 山田"),
    ("0312345678", "x" * 4096),
    (b"0312345679", b"\xff\xfeBad\xc3("),  # invalid UTF-8
    ("anonymous", "Anonymous"),
    ("0312345670", ""),
]


def new_manifests(spool: Path, before: set[Path], timeout: float = 10) -> list[CallManifest]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [CallManifest.read(p) for p in set(spool.glob("*.json")) - before]
        if found:
            time.sleep(0.3)
            return [CallManifest.read(p) for p in set(spool.glob("*.json")) - before]
        time.sleep(0.1)
    return []


@pytest.mark.parametrize(("user", "name"), HOSTILE)
def test_hostile_caller_ids_are_handled_safely(
    user: str | bytes, name: str | bytes, bench: Bench, caller: Caller, callrec: CallrecApp,
) -> None:
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    before = set(spool.glob("*.json"))
    run = caller.call("9001", hold_s=2.0, caller_user=user, caller_name=name)
    assert run.calls and run.calls[0].final_status == 200
    [m] = new_manifests(spool, before)
    assert (spool / f"{m.call_id}.json").exists()  # file names come from our id only
    assert all(p.parent == spool for p in spool.iterdir())
    assert m.caller.number == "".join(c for c in m.caller.number if c in "0123456789+*#")
    assert m.status == "recorded" and m.notice.played
    if isinstance(user, str) and isinstance(name, str) and user != "anonymous":
        assert m.caller.number_raw == user
        assert m.caller.name_raw == name[:len(m.caller.name_raw)]  # Asterisk may truncate


def test_malformed_from_never_enters_and_pbx_stays_up(
    bench: Bench, caller: Caller, callrec: CallrecApp, unique_caller: Callable[[], str],
) -> None:
    """An empty From user is not valid SIP: Asterisk does not answer; callrec sees nothing."""
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    before = set(spool.glob("*.json"))
    run = caller.call("9001", hold_s=1.0, caller_user="", caller_name="", timeout_s=40)
    assert run.calls[0].final_status != 200
    assert new_manifests(spool, before, timeout=1) == []
    number = unique_caller()
    run = caller.call("9001", hold_s=1.0, caller_user=number)
    assert run.calls[0].final_status == 200
    assert len(new_manifests(spool, before)) == 1
