"""Resilience: a callrec restart mid-call (graceful or kill -9) or an Asterisk crash still ends the
call with exactly one manifest and new calls work after it; a recording stopped mid-call is
reported."""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ari_app.closewatch import writer_open
from callrec.manifest import CallManifest
from testbench.bench import Bench
from testbench.procs import free_port
from testbench.proxy import CuttingProxy
from testbench.sipp import Caller, CallerRun
from tests.helpers import StartApp, metric, scrape, wait_bridged

pytestmark = pytest.mark.integration

Manifests = Callable[..., list[CallManifest]]


@contextmanager
def killed_in_its_notice(caller: Caller, start_callrec: StartApp, did: str, hold_s: float,
                         number: str) -> Iterator[Future[CallerRun]]:
    """A call to ``did`` whose callrec is killed (-9) 1.5 s into the notice (4.7 s); the
    caller's run goes on in the background while the block runs."""
    app = start_callrec()
    assert app.child is not None
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, did, hold_s=hold_s, caller_user=number)
        time.sleep(1.5)
        app.child.proc.kill()
        app.child.proc.wait()
        yield ongoing


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_mid_call_still_one_manifest(
    how: str, bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    first = start_callrec()
    assert first.child is not None
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, "9001", hold_s=12.0, caller_user=number)
        wait_bridged(bench, number)  # handed off: notice done, agent talking
        if how == "sigterm":
            first.stop()
        else:
            first.child.proc.kill()
            first.child.proc.wait()
        start_callrec()
        run = ongoing.result(timeout=60)
    assert run.calls[0].final_status == 200 and run.calls[0].hangup_by_us is True
    [m] = manifests(number)
    assert m.status == "recorded" and m.outcome == "completed"
    assert [a.endpoint for a in m.agents] == ["agent-answer"]
    assert m.agents[0].left_at is not None  # seen by the second run
    assert m.notice.completed and m.hangup_cause == 16
    assert m.recording is not None and m.recording.sha256 and m.recording.duration_s
    assert m.recording.duration_s > 11

    again = unique_caller()
    caller.call("9001", hold_s=7.0, caller_user=again)
    [m2] = manifests(again)
    assert m2.outcome == "completed" and m2.notice.completed


def test_call_in_its_notice_when_callrec_stops(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """A call in its notice when SIGTERM arrives finishes its notice and is handed off."""
    app = start_callrec()
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, "9001", hold_s=9.0, caller_user=number)
        time.sleep(1.5)  # in the notice (4.7 s)
        app.stop()
        start_callrec()
        ongoing.result(timeout=60)
    [m] = manifests(number)
    assert m.notice.completed and m.outcome == "completed"


def test_call_in_its_notice_when_callrec_is_killed(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """kill -9 in the notice: Asterisk keeps the channel in Stasis, silent, and nothing was
    journaled yet. The next run takes it on: its recording still verifies, so it is kept, the
    notice plays again in full, the agent gets the call, and one manifest describes the one
    recording. (Before: the caller sat in silence until they hung up, and no manifest.)"""
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    before = set(spool.glob("*.wav"))
    number, mark = unique_caller(), bench.asterisk.log_mark()
    with killed_in_its_notice(caller, start_callrec, "9001", 14.0, number) as ongoing:
        start_callrec()
        run = ongoing.result(timeout=60)
    assert run.calls[0].final_status == 200
    assert any(number in c.from_header and c.final_status == 200
               for c in bench.agents["answer"].calls())
    [m] = manifests(number)
    assert m.status == "recorded" and m.outcome == "completed"
    assert m.notice.completed and m.notice.started_at is not None
    assert m.recording is not None and m.recording.sha256 and m.recording.duration_s
    assert m.recording.duration_s > 12  # from the first answer: the same recording, kept
    assert set(spool.glob("*.wav")) - before == {spool / f"{m.call_id}.wav"}
    # The manifest keeps the first proof, the one the first (cut) notice was played under:
    # Asterisk's log says when that notice began.
    plays = first_notices(bench, m.asterisk_channel or "", mark)
    assert len(plays) == 2 and m.recording.verified_at is not None
    assert m.recording.verified_at <= plays[0] + timedelta(milliseconds=1)


def test_killed_in_its_notice_and_gone_before_callrec_is_back(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """kill -9 in the notice, and the caller hangs up before callrec is back: no channel is left
    to take on, yet the caller heard part of the notice. The notice's start was journaled, so
    the next run writes the call's manifest (found by the soak, bench/chaos.py)."""
    assert bench.asterisk is not None
    number, mark = unique_caller(), bench.asterisk.log_mark()
    with killed_in_its_notice(caller, start_callrec, "9001", 3.0, number) as ongoing:
        ongoing.result(timeout=60)  # hung up, 1.5 s after the kill
        start_callrec()
    [m] = manifests(number)
    assert m.status == "recorded" and m.outcome == "abandoned_in_notice"
    assert m.notice.played and not m.notice.completed and m.notice.started_at is not None
    assert m.recording is not None and m.recording.verified_at is not None
    assert m.recording.verified_at <= m.notice.started_at and m.recording.sha256
    [began] = first_notices(bench, m.asterisk_channel or "", mark)
    assert abs((began - m.notice.started_at).total_seconds()) < 1


def first_notices(bench: Bench, channel: str, since: int) -> list[datetime]:
    """When Asterisk began the notice on ``channel`` (messages.log after the mark ``since``,
    UTC), each time."""
    assert bench.asterisk is not None
    found = re.findall(r"^\[([0-9-]+ [0-9:.]+)\].*<" + re.escape(channel) +
                       r"> Playing 'callrec/notice\.", bench.asterisk.log_text()[since:],
                       re.MULTILINE)
    return [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in found]


def test_agi_call_whose_callrec_dies_in_the_notice_is_not_recorded_on(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """The FastAGI door: callrec killed in the notice ends the AGI, and the shipped dialplan
    sends the call down callrec-app-down (unrecorded) to the agents; the MixMonitor callrec had
    started is stopped there, not left recording a call nobody will describe. The notice's
    start was journaled (found by the soak, bench/chaos.py): once callrec is back, the call's
    one manifest says the caller heard the notice begin under a verified recording, and that
    the recording stopped - not a ledger entry saying no notice was played."""
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    before = set(spool.glob("*.wav"))
    number, mark = unique_caller(), bench.asterisk.log_mark()
    with killed_in_its_notice(caller, start_callrec, "8001", 12.0, number) as ongoing:
        wait_bridged(bench, number)
        [recording] = set(spool.glob("*.wav")) - before
        assert writer_open(recording) is False  # closed while the call goes on
        start_callrec()
        run = ongoing.result(timeout=60)
    assert run.calls[0].final_status == 200
    [m] = manifests(number)
    assert m.door == "agi" and m.asterisk_channel
    assert m.notice.played and not m.notice.completed and m.notice.started_at is not None
    assert m.recording is not None and m.recording.verified_at is not None
    assert m.recording.verified_at <= m.notice.started_at
    assert m.status == "interrupted", m
    [began] = first_notices(bench, m.asterisk_channel, mark)
    assert abs((began - m.notice.started_at).total_seconds()) < 1


@pytest.mark.parametrize(("did", "door"), [("9001", "stasis"), ("8001", "agi")])
def test_asterisk_crash_mid_call_still_one_manifest_and_a_playable_recording(
    did: str, door: str, bench: Bench, caller: Caller, start_callrec: StartApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    """The PBX dies (kill -9) with an agent on the call and comes back. The call still ends with
    one manifest, which says the recording was cut off with Asterisk; the WAV header Asterisk
    never finished is finished, so the recording plays; new calls work once Asterisk is back.
    Both doors: an AGI call is followed over ARI once its AGI has returned."""
    port = free_port()
    start_callrec(CALLREC_METRICS__PORT=str(port))
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, did, hold_s=12.0, caller_user=number)
        wait_bridged(bench, number)
        time.sleep(1.0)
        crashed = datetime.now(UTC)
        bench.crash_asterisk()
        ongoing.result(timeout=60)
    [m] = manifests(number, timeout=30)
    assert m.door == door
    assert m.status == "interrupted" and m.status_reason == "asterisk_restarted"
    assert m.notice.completed and [a.endpoint for a in m.agents] == ["agent-answer"]
    rec = m.recording
    assert rec is not None and rec.header_repaired and rec.closed_at is not None
    data = Path(rec.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == rec.sha256 and len(data) == rec.size
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    assert struct.unpack_from("<I", data, 40)[0] == len(data) - 44
    assert rec.duration_s is not None and rec.duration_s > 3  # notice and talk, up to the crash
    # It ended when Asterisk died, not when callrec saw Asterisk again.
    assert m.ended_at == rec.closed_at and abs((rec.closed_at - crashed).total_seconds()) < 1
    assert metric(scrape(port), 'callrec_recordings_interrupted_total{reason="asterisk_'
                                'restarted"}') == 1  # the alert

    again = unique_caller()
    caller.call(did, hold_s=7.0, caller_user=again)
    [m2] = manifests(again)
    assert m2.status == "recorded" and m2.outcome == "completed" and m2.notice.completed
    assert m2.recording is not None and not m2.recording.header_repaired


@pytest.mark.parametrize("did", ["9001", "8001"])
def test_asterisk_crash_in_the_notice_is_a_failed_call_not_an_abandoned_one(
    did: str, bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """Asterisk dies while the caller hears the notice: nobody abandoned the call, so its
    outcome is failed; the recording (perhaps nothing but its header yet) is cut off."""
    start_callrec()
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, did, hold_s=8.0, caller_user=number)
        time.sleep(2.0)  # in the notice (4.7 s)
        bench.crash_asterisk()
        ongoing.result(timeout=60)
    [m] = manifests(number, timeout=30)
    assert m.status == "interrupted" and m.status_reason == "asterisk_restarted"
    assert m.outcome == "failed" and m.agents == []
    assert m.notice.played and not m.notice.completed
    assert m.recording is not None and m.recording.header_repaired
    assert hashlib.sha256(Path(m.recording.path).read_bytes()).hexdigest() == m.recording.sha256


def test_callrec_and_asterisk_both_killed_mid_call(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """Both die at once (a host losing power) and come back: the next run adopts the call from
    the journal, and its manifest tells the same story as when callrec saw the crash."""
    first = start_callrec()
    assert first.child is not None
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, "9001", hold_s=12.0, caller_user=number)
        wait_bridged(bench, number)
        time.sleep(1.0)
        first.child.proc.kill()
        first.child.proc.wait()
        crashed = datetime.now(UTC)
        bench.crash_asterisk()
        start_callrec()
        ongoing.result(timeout=60)
    [m] = manifests(number, timeout=30)
    assert m.status == "interrupted" and m.status_reason == "asterisk_restarted"
    assert m.notice.completed and [a.endpoint for a in m.agents] == ["agent-answer"]
    rec = m.recording
    assert rec is not None and rec.header_repaired and rec.closed_at is not None
    assert hashlib.sha256(Path(rec.path).read_bytes()).hexdigest() == rec.sha256
    # Nobody saw the close: the last write dates it (Asterisk's last flush, before the crash).
    assert m.ended_at == rec.closed_at and -6 < (rec.closed_at - crashed).total_seconds() < 0.1


def test_a_notice_that_ends_while_ari_is_away_is_played_again_in_full(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """callrec's connection to ARI breaks in the notice and cannot come back for 6 s: the
    notice's PlaybackFinished goes to nobody. The caller used to wait in silence until they gave
    up; now the reconnect finds the playback gone and plays the notice again, in full."""
    assert bench.endpoints is not None and bench.asterisk is not None
    mark = bench.asterisk.log_mark()
    with CuttingProxy(int(bench.endpoints.ari_url.rsplit(":", 1)[1])) as ari:
        start_callrec(CALLREC_ARI__URL=f"http://127.0.0.1:{ari.port}")
        number = unique_caller()
        with ThreadPoolExecutor(1) as pool:
            ongoing = pool.submit(caller.call, "9001", hold_s=24.0, caller_user=number)
            time.sleep(2.5)  # in the notice (4.7 s)
            ari.cut(block_s=6.0)
            wait_bridged(bench, number, timeout=30)
            ongoing.result(timeout=60)
    [m] = manifests(number)
    assert m.status == "recorded" and m.outcome == "completed" and m.notice.completed
    # Asterisk, an independent witness, played it twice: the cut one and the one in full.
    assert m.asterisk_channel
    assert bench.asterisk.plays(m.asterisk_channel, "callrec/notice", since=mark) == 2


async def test_recording_stopped_mid_call_is_reported_interrupted(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """Someone else stops the MixMonitor mid-call: the manifest says interrupted, an alert fires."""
    from panoramisk import Manager

    ep = bench.endpoints
    assert ep is not None
    port = free_port()
    start_callrec(CALLREC_METRICS__PORT=str(port))
    number = unique_caller()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as pool:
        ongoing = loop.run_in_executor(pool, lambda: caller.call("9001", hold_s=10.0,
                                                                 caller_user=number))
        await loop.run_in_executor(None, wait_bridged, bench, number)
        manager = Manager(host=ep.ami_host, port=ep.ami_port, username=ep.asterisk.ami_user,
                          secret=ep.asterisk.ami_secret, ping_delay=0)
        await asyncio.wait_for(manager.connect(), 5)
        try:
            channels = await manager.send_action({"Action": "CoreShowChannels"})
            trunk = [c.Channel for c in channels if str(c.get("Channel", "")).startswith(
                "PJSIP/trunk") and number in str(c.get("CallerIDNum", ""))]
            assert trunk, "caller channel not found"
            reply = await manager.send_action({"Action": "StopMixMonitor", "Channel": trunk[0]})
            assert reply.Response == "Success"
        finally:
            manager.close()
        await ongoing
    [m] = await loop.run_in_executor(None, manifests, number)
    assert m.status == "interrupted" and m.status_reason == "recording_stopped_mid_call"
    assert m.notice.completed and m.outcome == "completed"
    assert m.recording is not None and m.recording.sha256  # what was recorded is kept
    metrics = scrape(port)  # the alert metric too
    assert metric(metrics, 'callrec_recordings_interrupted_total{reason="recording_stopped_'
                           'mid_call"}') == 1
    assert metric(metrics, 'callrec_calls_total{door="stasis",status="interrupted"}') == 1


def test_spool_disk_full_mid_call_is_interrupted_and_its_manifest_kept(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """The spool's disk fills up mid-call: MixMonitor keeps its file open but writes nothing more.
    callrec sees the file stop growing (interrupted + ALERT), cannot write the manifest at first,
    says so, and writes it once there is room: one manifest, nothing lost."""
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    st = spool.stat()
    subprocess.run(["mount", "-t", "tmpfs", "-o",  # a 224 KiB disk over the spool
                    f"size=224k,uid={st.st_uid},gid={st.st_gid},mode={st.st_mode & 0o7777:o}",
                    "tmpfs", str(spool)], check=True)
    try:
        filler = spool / ".filler"
        filler.write_bytes(bytes(64 << 10))  # leaves ~10 s of 16 KiB/s recording
        port = free_port()
        start_callrec(CALLREC_SPOOL__MIN_FREE_MB="0", CALLREC_NOTICE__STALL_ALERT_S="3",
                            CALLREC_METRICS__PORT=str(port))
        number = unique_caller()
        run = caller.call("9001", hold_s=22.0, caller_user=number)
        assert run.calls[0].answer_ms is not None
        deadline = time.monotonic() + 15
        while not metric(scrape(port), "callrec_manifest_write_failures_total"):
            assert time.monotonic() < deadline, "the full disk went unreported"
            time.sleep(0.2)
        filler.unlink()  # room again: the retry writes it
        [m] = manifests(number, timeout=40)
        assert m.status == "interrupted" and m.status_reason == "recording_not_growing"
        assert m.notice.completed  # the caller was told: hence the alert
        assert m.recording is not None and m.recording.sha256
        assert (spool / f"{m.call_id}.wav").stat().st_size == m.recording.size
        assert metric(scrape(port), 'callrec_recordings_interrupted_total{reason="recording_'
                                    'not_growing"}') == 1
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)
