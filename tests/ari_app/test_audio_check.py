"""The audio check on real voices (the product's own prompts), silence and line noise. The real
calls are in test_stereo_integration.py."""

from __future__ import annotations

import random
import wave
from array import array
from pathlib import Path

import pytest

from ari_app.audio_check import check
from ari_app.config import RecordingSettings
from callrec.manifest import MONO, STEREO, AudioChannel, AudioVerdict

REPO = Path(__file__).resolve().parents[2]


def voice(seconds: float) -> array[int]:
    """A real voice (two prompts, 8 kHz mono), as long as asked."""
    samples: array[int] = array("h")
    while len(samples) < seconds * 8000:
        for prompt in ("en/callrec/warning.wav", "ja/callrec/closing.wav"):
            with wave.open(str(REPO / "sounds" / prompt)) as w:
                samples.frombytes(w.readframes(w.getnframes()))
    return samples[:int(seconds * 8000)]


def silence(seconds: float) -> array[int]:
    return array("h", bytes(int(seconds * 8000) * 2))


def noise(seconds: float, level: float = 200) -> array[int]:
    """Line hiss, about -44 dBFS: not a voice."""
    rng = random.Random(7)
    return array("h", (int(rng.gauss(0, level)) for _ in range(int(seconds * 8000))))


def write(path: Path, *sides: array[int]) -> Path:
    frames = array("h", bytes(len(sides[0]) * len(sides) * 2))
    for i, side in enumerate(sides):
        frames[i::len(sides)] = side
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(sides))
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames.tobytes())
    return path


SETTINGS = RecordingSettings()


@pytest.mark.parametrize(("customer", "agent", "verdict"), [
    (voice, voice, AudioVerdict.CLEAN),
    (silence, voice, AudioVerdict.CUSTOMER_SILENT),  # no RTP from the caller: MixMonitor's zeros
    (noise, voice, AudioVerdict.CUSTOMER_SILENT),  # a phone on mute: hiss is not speech
    (voice, silence, AudioVerdict.AGENT_SILENT),
    (silence, noise, AudioVerdict.SILENT),
])
def test_each_side_of_a_stereo_call_is_judged(tmp_path: Path, customer: object, agent: object,
                                              verdict: AudioVerdict) -> None:
    assert callable(customer) and callable(agent)
    wav = write(tmp_path / "c.wav", customer(12.0), agent(12.0))
    result = check(wav, list(STEREO), 2.0, SETTINGS)
    assert result.verdict is verdict and result.from_s == 2.0
    for side, source in ((AudioChannel.CUSTOMER, customer), (AudioChannel.AGENT, agent)):
        speech = result.speech_s[side]
        assert (speech > 5) if source is voice else (speech < SETTINGS.min_speech_s), result


def test_only_the_conversation_counts(tmp_path: Path) -> None:
    """Speech before the agent answered (the notice, a caller talking over it) is not the
    conversation: a silent conversation after it is silent."""
    wav = write(tmp_path / "c.wav", voice(6.0) + silence(10.0))
    assert check(wav, list(MONO), 6.0, SETTINGS).verdict is AudioVerdict.SILENT
    assert check(wav, list(MONO), 0.0, SETTINGS).verdict is AudioVerdict.CLEAN


def test_a_short_answer_is_judged_by_the_threshold(tmp_path: Path) -> None:
    wav = write(tmp_path / "c.wav", silence(5.0) + voice(0.6) + silence(5.0))
    assert check(wav, list(MONO), 0.0, SETTINGS).verdict is AudioVerdict.SILENT
    lenient = RecordingSettings(min_speech_s=0.3)
    assert check(wav, list(MONO), 0.0, lenient).verdict is AudioVerdict.CLEAN
