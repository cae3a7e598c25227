"""Stereo recordings through the real PBX: the customer on the left, what they hear on the right.

The bench's Asterisk is Debian's 22.10.1, older than the MixMonitor D fix (22.11.0, issue #1779),
and all its codecs are A-law (8 kHz), the case the fix does not change: with
``stereo_on_8k_only_pbx`` it records stereo, without it callrec refuses stereo and records mono.
The caller sends a 440 Hz tone for the whole call."""

from __future__ import annotations

import hashlib
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from callrec.manifest import AudioChannel, CallManifest
from testbench.audio import channel, starts_with, tone_dbfs, wait_complete
from testbench.bench import Bench
from testbench.procs import free_port
from testbench.sipp import Caller
from tests.helpers import NOTICE_JA, StartApp, metric, scrape, wait_bridged

pytestmark = pytest.mark.integration

Manifests = Callable[..., list[CallManifest]]
STEREO = {"CALLREC_RECORDING__STEREO": "true",
          "CALLREC_RECORDING__STEREO_ON_8K_ONLY_PBX": "true"}
NOTICE_S = 4.7
CALLER_HZ, AGENT_HZ = 440, 1000  # the caller's test audio (testbench/sipp.py make_audio)


def stereo_wav(m: CallManifest) -> Path:
    """The WAV callrec made of the call's raw stream, checked against the stream itself."""
    rec = m.recording
    assert rec is not None and rec.channels == [AudioChannel.CUSTOMER, AudioChannel.AGENT]
    wav, raw = Path(rec.path), Path(rec.path).with_suffix(".raw")
    assert wav.suffix == ".wav" and raw.exists()  # the raw stays until the WAV is archived
    body = raw.read_bytes()
    assert rec.source_size == len(body) and rec.source_sha256 == hashlib.sha256(body).hexdigest()
    data = wav.read_bytes()
    assert rec.size == len(data) and rec.sha256 == hashlib.sha256(data).hexdigest()
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.readframes(w.getnframes()) == body[:len(body) - len(body) % 4]
    return wav


def test_a_stereo_call_keeps_the_customer_and_the_agent_apart(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str], tmp_path: Path,
) -> None:
    """The caller says 440 Hz, the agent 1 kHz: each tone on its own side only, and what the
    customer heard begins with the notice."""
    start_callrec(**STEREO)
    phone = bench.start_keys_phone([], audio=bench.tone(AGENT_HZ))
    try:
        number = unique_caller()
        caller.call("9012", hold_s=10.0, caller_user=number)
        [m] = manifests(number)
    finally:
        phone.stop()
    assert m.status == "recorded" and m.notice.completed and m.recording is not None
    assert m.recording.stereo_refused is None
    assert m.recording.duration_s is not None and abs(m.recording.duration_s - 10.0) < 0.6
    wav = stereo_wav(m)
    customer = channel(wav, 0, tmp_path / "customer.wav")
    heard = channel(wav, 1, tmp_path / "agent.wav")
    score, lag = starts_with(heard, NOTICE_JA)
    assert score > 0.9 and lag < 0.3, (score, lag)
    assert starts_with(customer, NOTICE_JA)[0] < 0.5  # the notice is not on their side
    talk = (NOTICE_S + 1.5, 9.0)  # both talk once the agent answered
    levels = {(side, hz): tone_dbfs(path, hz, *talk) for side, path in
              (("customer", customer), ("agent", heard)) for hz in (CALLER_HZ, AGENT_HZ)}
    assert levels["customer", CALLER_HZ] > -25 and levels["agent", AGENT_HZ] > -25, levels
    assert levels["customer", AGENT_HZ] < levels["customer", CALLER_HZ] - 30, levels
    assert levels["agent", CALLER_HZ] < levels["agent", AGENT_HZ] - 30, levels
    # And the caller's tone from the first second, during the notice.
    assert tone_dbfs(customer, CALLER_HZ, 0.5, NOTICE_S) > -25


def test_an_older_pbx_records_a_stereo_call_in_mono_and_says_why(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """Without the admin's word that every codec is 8 kHz, 22.10.1 may garble stereo."""
    start_callrec(CALLREC_RECORDING__STEREO="true")
    number = unique_caller()
    caller.call("9001", hold_s=7.0, caller_user=number, audio=bench.silence())
    [m] = manifests(number)
    rec = m.recording
    assert m.status == "recorded" and m.notice.completed and rec is not None
    assert rec.channels == [AudioChannel.MIX] and rec.source_sha256 is None
    assert rec.stereo_refused and "22.10.1" in rec.stereo_refused and "22.11.0" in \
        rec.stereo_refused
    wav = Path(rec.path)
    assert wav.suffix == ".wav" and not wav.with_suffix(".raw").exists()
    assert wait_complete(wav).duration > 6
    assert starts_with(wav, NOTICE_JA)[0] > 0.9


def test_asterisk_crash_in_a_stereo_call_still_leaves_a_playable_recording(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """A raw stream has no header that would say its writer died: the PBX's restart says it,
    and the WAV made of what Asterisk wrote up to the crash plays."""
    start_callrec(**STEREO)
    number = unique_caller()
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, "9001", hold_s=12.0, caller_user=number)
        wait_bridged(bench, number)
        time.sleep(1.0)
        bench.crash_asterisk()
        ongoing.result(timeout=60)
    [m] = manifests(number, timeout=30)
    assert m.status == "interrupted" and m.status_reason == "asterisk_restarted"
    assert m.recording is not None and m.recording.closed_at is not None
    stereo_wav(m)
    assert m.recording.duration_s is not None and m.recording.duration_s > NOTICE_S


def test_a_stereo_call_whose_callrec_is_killed_in_the_notice_keeps_its_recording(
    bench: Bench, caller: Caller, start_callrec: StartApp, manifests: Manifests,
    unique_caller: Callable[[], str],
) -> None:
    """kill -9 in the notice: the next run proves the raw stream the first run started (by its
    MixMonitor's datastore and its writer, not a header) and keeps it."""
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    before = set(spool.glob("*.raw"))
    number, first = unique_caller(), start_callrec(**STEREO)
    assert first.child is not None
    with ThreadPoolExecutor(1) as pool:
        ongoing = pool.submit(caller.call, "9001", hold_s=14.0, caller_user=number)
        time.sleep(1.5)
        first.child.proc.kill()
        first.child.proc.wait()
        start_callrec(**STEREO)
        ongoing.result(timeout=60)
    [m] = manifests(number)
    assert m.status == "recorded" and m.outcome == "completed" and m.notice.completed
    stereo_wav(m)
    assert m.recording is not None and (m.recording.duration_s or 0) > 12
    assert set(spool.glob("*.raw")) - before == {spool / f"{m.call_id}.raw"}


@pytest.mark.parametrize(("caller_says", "verdict"), [("voice", "clean"),
                                                      ("silence", "customer_silent")])
def test_the_audio_check_tells_a_silent_customer_from_a_conversation(
    caller_says: str, verdict: str, bench: Bench, caller: Caller, start_callrec: StartApp,
    manifests: Manifests, unique_caller: Callable[[], str],
) -> None:
    """The agent talks; the caller talks, or sends silence (a phone on mute, a dead direction:
    the file grows all the same). The manifest and the metric say which."""
    port = free_port()
    start_callrec(CALLREC_METRICS__PORT=str(port), **STEREO)
    phone = bench.start_keys_phone([], audio=bench.voice("ja/callrec/closing"))
    try:
        number = unique_caller()
        audio = bench.voice() if caller_says == "voice" else bench.silence()
        caller.call("9012", hold_s=12.0, caller_user=number, audio=audio)
        [m] = manifests(number)
    finally:
        phone.stop()
    assert m.status == "recorded" and m.recording is not None
    check = m.recording.audio_check
    assert check is not None and check.verdict == verdict, check
    answered = m.agents[0].answered_at
    assert answered is not None and m.recording.started_at is not None
    assert abs(check.from_s - (answered - m.recording.started_at).total_seconds()) < 0.01
    assert check.speech_s[AudioChannel.AGENT] > 2
    assert metric(scrape(port), f'callrec_audio_checks_total{{verdict="{verdict}"}}') == 1
