"""Payment pauses against the real PBX: the agent's keys (RFC 2833 from a SIPp agent phone), the
control API and the shipped dialplan subroutines mute the call's own MixMonitor; what the caller
sends during the pause (a 440 Hz tone) is absent from the recording, present after; the silence
is where the manifest says; the resume is proven before its prompt, and nothing claims it when it
cannot be."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from callrec.manifest import CallManifest, EventKind, Pause, PauseEnd, PauseSource
from testbench.asterisk import ami_action
from testbench.audio import (
    best_match,
    channel,
    heard_at,
    silent_spans,
    tone_dbfs,
    wait_complete,
)
from testbench.baresip import BaresipCaller
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.endpoints import Endpoints
from testbench.procs import free_port
from testbench.sipp import Caller
from tests.helpers import (
    REPO,
    call_with_keys,
    metric,
    scrape,
    stop_mixmonitor,
    wait_for_channel,
)

pytestmark = pytest.mark.integration
Manifests = Callable[..., list[CallManifest]]
StartApp = Callable[..., CallrecApp]
RESUMED_JA = REPO / "sounds/ja/callrec/resumed.wav"
PAUSED_JA = REPO / "sounds/ja/callrec/paused.wav"
TOKEN = "pause-api-token-for-tests"
CALLER_HZ = 440  # the bench caller's tone


def check_silence(m: CallManifest) -> tuple[Pause, Path]:
    """The call's one pause is the recording's one silent span, within 100 ms at both ends;
    the caller's tone is heard before and after it; the file lasts as long as the call."""
    assert m.recording is not None and m.recording.started_at and m.recording.closed_at
    [pause] = m.pauses
    assert pause.offset_s is not None and pause.end_offset_s is not None
    wav = Path(m.recording.path)
    info = wait_complete(wav)
    [(start, end)] = silent_spans(wav, min_s=1.0)
    assert abs(start - pause.offset_s) < 0.1, (start, pause)
    assert abs(end - pause.end_offset_s) < 0.1, (end, pause)
    assert tone_dbfs(wav, CALLER_HZ, start + 0.1, end - 0.1) == float("-inf")
    assert tone_dbfs(wav, CALLER_HZ, max(start - 1.5, 0), start - 0.2) > -30
    assert tone_dbfs(wav, CALLER_HZ, end + 0.2, end + 1.5) > -30
    wall = (m.recording.closed_at - m.recording.started_at).total_seconds()
    assert abs(info.duration - wall) < 0.3, (info.duration, wall)
    return pause, wav


def kinds(m: CallManifest) -> list[EventKind]:
    return [e.kind for e in m.timeline]


def api(port: int, method: str, path: str, body: dict[str, Any] | None = None,
        token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def call_id_of(bench: Bench, endpoints: Endpoints, channel: str) -> str:
    reply = ami_action(bench.ports.ami, endpoints.asterisk,
                       {"Action": "Getvar", "Channel": channel, "Variable": "CALLREC_ID"})
    assert reply.get("Response") == "Success", reply
    return str(reply["Value"])


@contextmanager
def answered_call(bench: Bench, caller: Caller, endpoints: Endpoints, number: str,
                  hold_s: float) -> Iterator[tuple[str, str]]:
    """A call to 9001 (an echoing agent) under way: its trunk channel and CALLREC_ID; the
    call's end is awaited on leaving the block."""
    with ThreadPoolExecutor(1) as pool:
        placed = pool.submit(caller.call, "9001", hold_s=hold_s, caller_user=number)
        wait_for_channel(endpoints, "PJSIP/agent-answer-")
        trunk = wait_for_channel(endpoints, "PJSIP/trunk-")
        call_id = call_id_of(bench, endpoints, trunk)
        time.sleep(1.0)
        yield trunk, call_id
        placed.result()


@pytest.fixture
def paused_app(start_callrec: StartApp) -> tuple[CallrecApp, int]:
    port = free_port()
    app = start_callrec(CALLREC_API__PORT=str(port), CALLREC_API__TOKEN=TOKEN)
    return app, port


@pytest.mark.parametrize("did", ["9012", "8012"], ids=["stasis", "agi"])
def test_the_agents_keys_pause_and_resume(
    did: str, bench: Bench, caller: Caller, paused_app: tuple[CallrecApp, int],
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    assert bench.asterisk is not None
    m = call_with_keys(bench, caller, manifests, unique_caller(), [(2.0, "*5"), (9.0, "*6")],
                       did)
    pause, wav = check_silence(m)
    assert (pause.source, pause.by, pause.ended_by, pause.resume_proven) == (
        PauseSource.KEY, "agent-keys", PauseEnd.RESUME, True)
    assert m.status == "recorded" and m.outcome == "completed"
    assert m.asterisk_channel
    assert bench.asterisk.played(m.asterisk_channel, "callrec/paused")
    assert bench.asterisk.played(m.asterisk_channel, "callrec/resumed")
    # The resumed prompt is in the recording right after the pause; the paused one is not.
    assert heard_at(wav, RESUMED_JA, pause.end_offset_s or 0, window_s=2.0) > 0.8
    assert heard_at(wav, PAUSED_JA, pause.offset_s or 0, window_s=2.0) < 0.5
    assert kinds(m).index(EventKind.AGENT_ANSWERED) < kinds(m).index(
        EventKind.RECORDING_PAUSED) < kinds(m).index(EventKind.RECORDING_RESUMED)
    text = scrape(paused_app[0].metrics_port)
    assert metric(text, 'callrec_pauses_total{source="key"}') == 1
    assert metric(text, 'callrec_pause_ends_total{ended_by="resume",proven="true"}') == 1


def test_the_payment_ivr_pauses_with_the_shipped_subroutines(
    bench: Bench, caller: Caller, paused_app: tuple[CallrecApp, int], manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    number = unique_caller()
    caller.call("9013", hold_s=26.0, caller_user=number)
    [m] = manifests(number)
    pause, _ = check_silence(m)
    assert (pause.source, pause.by, pause.ended_by, pause.resume_proven) == (
        PauseSource.DIALPLAN, "payment-ivr", PauseEnd.RESUME, True)
    # The IVR's 4 s of card digits and the paused prompt's 5.5 s both fall in the pause.
    assert (pause.end_offset_s or 0) - (pause.offset_s or 0) > 9.0
    assert m.agents and m.agents[0].bridged_at  # then the agent


def test_the_api_pauses_auto_resumes_and_refuses_what_it_must(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    port = free_port()
    app = start_callrec(CALLREC_API__PORT=str(port), CALLREC_API__TOKEN=TOKEN,
                        CALLREC_PAUSE__MAX_S="6")
    number = unique_caller()
    with answered_call(bench, caller, endpoints, number, 26.0) as (_, call_id):
        assert api(port, "POST", f"/v1/calls/{call_id}/pause", token="wrong")[0] == 401
        assert api(port, "POST", "/v1/calls/20261207T000000Z-000000000000/pause")[0] == 404
        status, body = api(port, "POST", f"/v1/calls/{call_id}/pause", {"by": "x" * 65})
        assert status == 400, body
        status, body = api(port, "POST", f"/v1/calls/{call_id}/pause", {"by": "crm-user-17"})
        assert (status, body["state"], body["paused"]) == (200, "paused", True), body
        status, body = api(port, "POST", f"/v1/calls/{call_id}/pause", {"by": "crm-user-17"})
        assert body["state"] == "already_paused"
        # No resume asked: pause.max_s (6 s) resumes it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and api(port, "GET", f"/v1/calls/{call_id}")[1]["paused"]:
            time.sleep(0.2)
        status, body = api(port, "GET", f"/v1/calls/{call_id}")
        assert body["paused"] is False and body["pauses"][0]["ended_by"] == "auto"
    [m] = manifests(number)
    pause, _ = check_silence(m)
    assert (pause.source, pause.by, pause.ended_by, pause.resume_proven) == (
        PauseSource.API, "crm-user-17", PauseEnd.AUTO, True)
    assert 5.5 < (pause.end_offset_s or 0) - (pause.offset_s or 0) < 7.0
    text = scrape(app.metrics_port)
    assert metric(text, 'callrec_pause_ends_total{ended_by="auto",proven="true"}') == 1


def test_a_resume_that_cannot_be_proven_plays_nothing_and_a_warning_resumes_first(
    bench: Bench, caller: Caller, paused_app: tuple[CallrecApp, int], manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    assert bench.asterisk is not None
    app, port = paused_app
    # Call 1: the recording is stopped during the pause; the agent's resume key is refused.
    phone = bench.start_keys_phone([(2.0, "*5"), (9.0, "*6")])
    mark = bench.asterisk.log_mark()
    try:
        number = unique_caller()
        with ThreadPoolExecutor(1) as pool:
            placed = pool.submit(caller.call, "9012", hold_s=26.0, caller_user=number)
            wait_for_channel(endpoints, "PJSIP/agent-keys-")
            trunk = wait_for_channel(endpoints, "PJSIP/trunk-")
            call_id = call_id_of(bench, endpoints, trunk)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not api(
                    port, "GET", f"/v1/calls/{call_id}")[1]["paused"]:
                time.sleep(0.1)
            stop_mixmonitor(bench, endpoints, trunk)
            placed.result()
        [m] = manifests(number)
    finally:
        phone.stop()
    [pause] = m.pauses
    assert pause.resume_proven is False and pause.ended_by is PauseEnd.RESUME
    # The file's close was seen first (ari_app/ending.py): the reason is that one.
    assert m.status == "interrupted" and m.status_reason == "recording_stopped_mid_call"
    assert bench.asterisk.plays(trunk, "callrec/resumed", since=mark) == 0
    assert EventKind.RESUME_UNPROVEN in kinds(m)
    assert metric(scrape(app.metrics_port),
                  'callrec_pause_ends_total{ended_by="resume",proven="false"}') == 1

    # Call 2: *7 during a pause: resumed (proven, said), then the warning.
    m = call_with_keys(bench, caller, manifests, unique_caller(), [(2.0, "*5"), (9.0, "*7")],
                       hold_s=34.0)
    [pause] = m.pauses
    assert pause.ended_by is PauseEnd.WARNING and pause.resume_proven is True
    k = kinds(m)
    assert k.index(EventKind.RECORDING_PAUSED) < k.index(EventKind.RECORDING_RESUMED) \
        < k.index(EventKind.WARNING_PLAYED)
    assert m.asterisk_channel and bench.asterisk.played(m.asterisk_channel, "callrec/warning")


def test_kill_9_during_a_pause_resumes_it_after_the_restart(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    port = free_port()
    env = {"CALLREC_API__PORT": str(port), "CALLREC_API__TOKEN": TOKEN}
    first = start_callrec(**env)
    number = unique_caller()
    with answered_call(bench, caller, endpoints, number, 30.0) as (_, call_id):
        assert api(port, "POST", f"/v1/calls/{call_id}/pause", {"by": "crm"})[1]["state"] \
            == "paused"
        time.sleep(2.0)
        assert first.child is not None
        first.child.proc.kill()  # SIGKILL: no shutdown, the pause is in the journal only
        first.child.proc.wait()
        time.sleep(1.0)
        start_callrec(**env)
    [m] = manifests(number)
    pause, _ = check_silence(m)
    assert pause.ended_by is PauseEnd.RESTART and pause.resume_proven is True
    assert m.status == "recorded"


def test_a_transfer_during_a_pause_resumes_it(
    bench: Bench, caller: Caller, paused_app: tuple[CallrecApp, int], manifests: Manifests,
    unique_caller: Callable[[], str], endpoints: Endpoints,
) -> None:
    """The CRM pauses, then the agent blind-transfers the caller (a REFER 3 s after answering,
    testbench/scenarios/agent_transfer.xml): the pause outlives the agent's leg by nothing."""
    _, port = paused_app
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        placed = pool.submit(caller.call, "9008", hold_s=20.0, caller_user=number)
        wait_for_channel(endpoints, "PJSIP/agent-transfer-")
        call_id = call_id_of(bench, endpoints, wait_for_channel(endpoints, "PJSIP/trunk-"))
        assert api(port, "POST", f"/v1/calls/{call_id}/pause", {"by": "crm"})[1]["state"] \
            == "paused"
        placed.result()
    [m] = manifests(number)
    [pause] = m.pauses
    # The transferring agent's leg ends first (a blind transfer): the pause with it.
    assert pause.ended_by is PauseEnd.AGENT_CHANGED and pause.resume_proven is True
    first = m.agents[0]
    assert first.endpoint == "agent-transfer" and first.left_at and pause.ended_at
    assert abs((pause.ended_at - first.left_at).total_seconds()) < 1.0
    assert [a.endpoint for a in m.agents] == ["agent-transfer", "agent-answer"]
    assert m.status == "recorded"


def test_a_stereo_recording_is_silent_on_both_channels_during_the_pause(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], tmp_path: Path,
) -> None:
    """MixMonitor D: the mute clears both directions before the stereo copies
    (main/audiohook.c audiohook_read_frame_both), so the customer's side and what they hear
    are both silent in the span, and both sound outside it."""
    start_callrec(CALLREC_RECORDING__STEREO="true", CALLREC_RECORDING__STEREO_ON_8K_ONLY_PBX="true")
    m = call_with_keys(bench, caller, manifests, unique_caller(), [(2.0, "*5"), (9.0, "*6")],
                       agent_audio=bench.tone(1000))
    assert m.recording is not None and len(m.recording.channels) == 2
    [pause] = m.pauses
    assert pause.offset_s is not None and pause.end_offset_s is not None
    wav = Path(m.recording.path)
    for side, hz in ((0, CALLER_HZ), (1, 1000)):
        mono = channel(wav, side, tmp_path / f"side{side}.wav")
        spans = [s for s in silent_spans(mono, min_s=1.0)
                 if s[0] < pause.end_offset_s and s[1] > pause.offset_s]
        assert len(spans) == 1, (side, spans)
        # It may begin a little early on one side: while the key's subroutine takes the
        # caller's channel out of the bridge's hands, nothing is read from it for ~0.1 s, and
        # MixMonitor D writes silence for the missing side (AST_AUDIOHOOK_SUBSTITUTE_SILENCE).
        assert pause.offset_s - 0.3 < spans[0][0] < pause.offset_s + 0.1, (side, spans)
        assert spans[0][1] > pause.end_offset_s - 0.1, (side, spans)
        assert tone_dbfs(mono, hz, pause.end_offset_s + 6.0, pause.end_offset_s + 8.0) > -40
    # The customer is heard again from the unmute on. (What they hear: the resumed prompt, then
    # the agent's tone; on Asterisk 22.10 the prompt, played by the AGI's STREAM FILE, is not in
    # D's second channel, measured: side 1 stays silent until the agent's tone.)
    customer = channel(wav, 0, tmp_path / "customer.wav")
    [(_, back)] = [s for s in silent_spans(customer, min_s=1.0)
                   if s[0] < pause.end_offset_s and s[1] > pause.offset_s]
    assert abs(back - pause.end_offset_s) < 0.1


def test_the_caller_hears_the_notice_then_paused_then_resumed(
    bench: Bench, paused_app: tuple[CallrecApp, int], manifests: Manifests,
    unique_caller: Callable[[], str], tmp_path: Path,
) -> None:
    """What the caller really received (baresip as the caller, keeping what it heard): the
    notice, the paused prompt, then the resumed one, in that order."""
    phone = bench.start_keys_phone([(2.0, "*5"), (9.0, "*6")])
    try:
        number = unique_caller()
        heard = BaresipCaller(tmp_path / "baresip", bench.ports.sip, free_port(),
                              (47000, 47099)).call("9012", number, 36.0)
        [m] = manifests(number)
    finally:
        phone.stop()
    [pause] = m.pauses
    assert pause.resume_proven is True
    at = {name: best_match(heard, REPO / f"sounds/ja/callrec/{name}.wav")
          for name in ("notice", "paused", "resumed")}
    assert all(score > 0.8 for score, _ in at.values()), at
    assert at["notice"][1] < at["paused"][1] < at["resumed"][1], at
