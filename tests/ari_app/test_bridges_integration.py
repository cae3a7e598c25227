"""The safety net: two-party bridges that did not go through callrec get a ledger entry."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from callrec.manifest import CallManifest
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.procs import free_port
from testbench.sipp import Caller
from tests.helpers import metric, scrape

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]


def by_name(spool: Path, name: str, timeout: float = 15.0) -> list[CallManifest]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in map(CallManifest.read, spool.glob("*.json"))
                 if m.caller.name_raw == name]
        if found:
            time.sleep(0.5)
            return [m for m in map(CallManifest.read, spool.glob("*.json"))
                    if m.caller.name_raw == name]
        time.sleep(0.2)
    raise AssertionError(f"no ledger entry for {name!r}")


def test_trunk_call_that_bypassed_callrec_is_in_the_ledger(
    bench: Bench, caller: Caller, start_callrec: Callable[..., CallrecApp],
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    port = free_port()
    start_callrec(CALLREC_METRICS__PORT=str(port))
    number = unique_caller()
    run = caller.call("6001", hold_s=4.0, caller_user=number)  # DID dialling an agent directly
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    assert m.door == "none" and m.status == "unrecorded"
    assert m.status_reason == "not_routed_through_callrec" and m.policy == "force"
    assert m.recording is None and not m.notice.played  # nothing was started behind their back
    assert m.asterisk_channel and m.asterisk_channel.startswith("PJSIP/trunk-")
    assert [a.endpoint for a in m.agents] == ["agent-answer"]
    assert m.ended_at is not None and m.outcome == "completed"
    assert metric(scrape(port), 'callrec_unrecorded_calls_total{reason="not_routed_through_'
                                'callrec"}') == 1


def test_internal_call_is_not_recorded_and_the_ledger_says_why(
    bench: Bench, callrec: CallrecApp,
) -> None:
    assert bench.asterisk is not None
    name = "internal-" + uuid.uuid4().hex[:8]
    run = bench.agent_caller().call("2001", hold_s=3.0, caller_user="agent-answer",
                                    caller_name=name)
    assert run.calls[0].final_status == 200
    [m] = by_name(bench.asterisk.recordings, name)
    assert m.status == "unrecorded" and m.status_reason == "internal_call"
    assert m.policy == "never" and m.door == "none" and not m.notice.played
    assert m.recording is None


def test_calls_through_callrec_get_no_second_entry(
    caller: Caller, callrec: CallrecApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call("9001", hold_s=7.0, caller_user=number)
    [m] = manifests(number)  # exactly one: the agent's bridge is part of this call
    assert m.door == "stasis" and m.status == "recorded"
