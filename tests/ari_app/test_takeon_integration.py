"""No call without a trace, even while callrec restarts: what is still up at a restart is taken
on (ari_app/takeon.py); what ended while callrec was down is found by ``callrec reconcile`` in
Asterisk's own CDRs, as is a call routed around callrec or a manifest lost before shipping."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callrec.manifest import CallManifest, RecordingStatus
from testbench.bench import Bench
from testbench.procs import free_port
from testbench.proxy import CuttingProxy
from testbench.sipp import Caller
from tests.helpers import (
    StartApp,
    callrec_cli,
    evidence_env,
    metric,
    scrape,
    sealing,
    wait_bridged,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def env(bench: Bench, locked_bucket: str, tmp_path: Path) -> dict[str, str]:
    # No uploader runs: the manifests stay in the spool, where reconcile reads them too.
    return evidence_env(bench, locked_bucket, tmp_path, "t" + uuid.uuid4().hex[:10],
                        CALLREC_RECONCILE__SETTLE_S="0")


def spool_manifests(bench: Bench, number: str) -> list[CallManifest]:
    assert bench.asterisk is not None
    found = []
    for path in bench.asterisk.recordings.glob("*.json"):
        m = CallManifest.read(path)
        if m.caller.number_raw == number:
            found.append(m)
    return found


def reconcile(env: dict[str, str], since: datetime) -> tuple[int, dict[str, Any]]:
    result = callrec_cli(env, "reconcile", "--since", since.isoformat(), "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_kill_9_under_load_every_call_leaves_a_trace(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str],
    unique_caller: Callable[[], str],
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    steady, during = unique_caller(), unique_caller()
    app = start_callrec(**sealing(env))
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(caller.call, "9001", hold_s=8.0, count=20, rate=1.0,
                           caller_user=steady)
        for down_s, at in ((2.0, 6.0), (6.0, 14.0)):
            time.sleep(max(0.0, at - (datetime.now(UTC) - since).total_seconds() + 2))
            assert app.child is not None
            app.child.proc.kill()
            app.child.proc.wait()
            if down_s > 2:  # short calls that start and end while callrec is down
                quick = bench.second_caller()
                run = quick.call("9001", hold_s=1.0, count=2, rate=2.0, caller_user=during)
                assert [c.final_status for c in run.calls] == [200, 200]
            else:
                time.sleep(down_s)
            app = start_callrec(**sealing(env))
        assert [c.final_status for c in load.result().calls] == [200] * 20

    time.sleep(3.0)  # the last calls' manifests (recordings proven closed)
    steady_calls = spool_manifests(bench, steady)
    code, report = reconcile(env, since)
    found = [g["uniqueid"] for g in report["gaps"] if g["src"] == steady]
    # Exactly one trace per call placed: a manifest (callrec took it) or a ledger entry (it
    # took the app-down path: written once callrec saw it bridged, or took it on after the
    # restart). Only calls that begin and end while callrec is down are reconcile's gaps.
    traced = [m.asterisk_uniqueid for m in steady_calls]
    assert len(set(traced)) == len(traced) and not set(traced) & set(found)
    assert not found  # on this bench every steady call (8 s) outlives an outage
    assert len(traced) + len(found) == 20
    doors = {(m.door, m.status_reason) for m in steady_calls}
    assert ("none", "app_down") in doors and any(m.door == "stasis" for m in steady_calls)
    for m in steady_calls:
        if m.notice.played:  # never told without a verified recording
            assert m.status is not RecordingStatus.UNRECORDED and m.recording is not None
            assert m.recording.verified_at is not None and m.notice.started_at is not None
            assert m.recording.verified_at <= m.notice.started_at
        if m.door == "none":
            assert not m.notice.played and m.recording is None
    assert spool_manifests(bench, during) == []  # gone before callrec was back
    # ... so reconcile found them in the CDR (marked at the door and on the app-down path)
    # and wrote their ledger entries: no gap is left.
    assert code == 0 and report["gaps"] == [], report
    assert len(report["entered"]) == 2
    assert report["traced"] >= 20 and report["ledger_reasons"].get("app_down", 0) >= 3


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_a_taken_on_call_keeps_one_entry_through_an_ami_cut_and_a_kill(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str],
    unique_caller: Callable[[], str],
) -> None:
    """The soak's duplicates, pinned: a call that found callrec down is bridged to an agent;
    callrec starts and takes it on (its entry written at once). AMI is then cut (the reconnect
    takes on again what is up) and callrec killed with -9 and restarted (a new process, the
    same spool): the call still has exactly one entry."""
    assert bench.endpoints is not None
    number, port = unique_caller(), free_port()
    with CuttingProxy(bench.endpoints.ami_port) as ami, ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, "9001", hold_s=25.0, caller_user=number)
        wait_bridged(bench, number)  # by the app-down path: nobody listens on Stasis(callrec)
        settings = {**sealing(env), "CALLREC_AMI__PORT": str(ami.port),
                    "CALLREC_METRICS__PORT": str(port)}
        app = start_callrec(**settings)
        wait_for(lambda: len(spool_manifests(bench, number)) == 1, 15, "taken on")
        ami.cut(block_s=3.0)
        wait_for(lambda: metric(scrape(port), "callrec_ami_connected") == 0, 5, "AMI cut")
        wait_for(lambda: metric(scrape(port), "callrec_ami_connected") == 1, 15, "AMI back")
        time.sleep(2.0)  # the reconnect's take-on
        assert app.child is not None
        app.child.proc.kill()
        app.child.proc.wait()
        start_callrec(**settings)
        wait_for(lambda: metric(scrape(port), "callrec_ami_connected") == 1, 15, "restarted")
        time.sleep(2.0)  # the restart's take-on
        assert ongoing.result(timeout=60).calls[0].final_status == 200
    time.sleep(1.0)
    [m] = spool_manifests(bench, number)
    assert (m.door, m.status_reason, m.notice.played, m.recording) == ("none", "app_down",
                                                                        False, None)


def test_reconcile_finds_a_call_routed_around_callrec_and_a_lost_manifest(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str],
    unique_caller: Callable[[], str],
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=2)
    around, lost, kept = unique_caller(), unique_caller(), unique_caller()
    # The safety net is off: a DID that dials an agent directly leaves no ledger entry.
    start_callrec(**sealing(env), CALLREC_BRIDGES__WATCH="false")
    assert caller.call("6001", hold_s=2.0, caller_user=around).calls[0].final_status == 200
    for number in (lost, kept):
        assert caller.call("9001", hold_s=2.0, caller_user=number).calls[0].final_status == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (spool_manifests(bench, lost)
                                               and spool_manifests(bench, kept)):
        time.sleep(0.2)
    [m] = spool_manifests(bench, lost)
    assert bench.asterisk is not None
    for suffix in (".json", ".json.sig", ".wav"):  # removed before the uploader saw it
        (bench.asterisk.recordings / f"{m.call_id}{suffix}").unlink()

    code, report = reconcile(env, since)
    assert code == 1
    gaps = {g["src"]: g for g in report["gaps"]}
    assert set(gaps) == {around, lost}
    assert gaps[lost]["uniqueid"] == m.asterisk_uniqueid
    assert gaps[around]["channel"].startswith("PJSIP/trunk-")
    assert report["traced"] >= 1


def test_calls_that_begin_and_end_while_callrec_is_down_get_their_ledger_entries(
    bench: Bench, caller: Caller, start_callrec: StartApp, env: dict[str, str],
    unique_caller: Callable[[], str],
) -> None:
    """The issue's case: callrec down, the only agent busy. The callers were turned away and
    nothing of callrec's saw them; Asterisk's CDR did (the dialplan marks the door and the
    app-down path), and reconcile writes their signed entries (once), which verify covers."""
    since = datetime.now(UTC) - timedelta(seconds=2)
    busy, answered = unique_caller(), unique_caller()
    app = start_callrec(**sealing(env))
    app.stop()  # a clean stop: nothing of callrec's runs while the calls come and go
    run = caller.call("9002", hold_s=1.0, count=2, rate=2.0, caller_user=busy)
    assert [c.final_status for c in run.calls] == [486, 486]  # the agent's phone is busy
    assert caller.call("9001", hold_s=1.0, caller_user=answered).calls[0].final_status == 200
    time.sleep(1.5)  # cdr_csv writes a row when the CDR is dispatched, after the hang-up

    code, report = reconcile(env, since)
    assert code == 0, report
    mine = [g for g in report["gaps"] if g["src"] in (busy, answered)]
    assert mine == [] and len(report["entered"]) == 3 and report["at_door"] >= 3
    code, again = reconcile(env, since)  # the entries are traces now: written once
    assert code == 0 and again["entered"] == [] and again["traced"] >= 3
    assert again["ledger_reasons"].get("app_down", 0) >= 3

    entries = {}
    for call_id in report["entered"]:
        shown = callrec_cli(env, "archive", "show", call_id, "--json")
        assert shown.returncode == 0, shown.stderr
        m = CallManifest.model_validate(json.loads(shown.stdout)["manifest"])
        entries[call_id] = m
    by_number = sorted((m.caller.number_raw, m.did, m.outcome, m.status_reason, m.door,
                        [a.dial_status for a in m.agents]) for m in entries.values())
    assert by_number == sorted([(busy, "9002", "no_agent", "app_down", "none", ["BUSY"])] * 2
                               + [(answered, "9001", "completed", "app_down", "none",
                                   ["ANSWER"])])
    assert all(m.chain is not None and m.chain.chain.endswith(".archive") and
               not m.notice.played and m.recording is None for m in entries.values())
    verified = callrec_cli(env, "archive", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_reconcile_says_when_it_clamps_the_window(env: dict[str, str]) -> None:
    result = callrec_cli({**env, "CALLREC_RECONCILE__SETTLE_S": "300"}, "reconcile", "--since",
                         (datetime.now(UTC) - timedelta(hours=1)).isoformat(), "--until",
                         datetime.now(UTC).isoformat(), "--json")
    report = json.loads(result.stdout)
    assert report["clamped_from"] and report["until"] < report["clamped_from"]
