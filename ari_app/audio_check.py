"""The audio check: after a call, is anyone heard on its recording after the notice?

Recordings are lost silently to one-sided or silent audio (NAT, a phone on mute, a dead trunk
direction) while the file grows as it should: MixMonitor fills a direction that sends nothing with
zeros (app_mixmonitor.c: a missing read or write frame is silence), so a one-sided call is an
all-zero channel, not a shorter file. The check runs WebRTC's voice-activity detector (webrtcvad)
over each channel of the conversation (from the first agent's answer, so after the notice, to the
end), 30 ms frames, and counts the seconds of speech:
line noise and comfort noise are not speech, a voice is. It never changes what the caller was
told; it tells ops which recordings are useless before they need them.
"""

from __future__ import annotations

import wave
from array import array
from pathlib import Path

import webrtcvad

from ari_app.config import RecordingSettings
from callrec.manifest import AudioChannel, AudioCheck, AudioVerdict

FRAME_S = 0.03  # webrtcvad takes 10, 20 or 30 ms frames of 16-bit mono


def speech_seconds(samples: array[int], rate: int, vad: webrtcvad.Vad) -> float:
    step = int(rate * FRAME_S)
    voiced = sum(bool(vad.is_speech(samples[i:i + step].tobytes(), rate))
                 for i in range(0, len(samples) - step + 1, step))
    return round(voiced * FRAME_S, 2)


def check(wav: Path, channels: list[AudioChannel], from_s: float,
          settings: RecordingSettings) -> AudioCheck:
    """The verdict on a finished 16-bit WAV (mono, or stereo customer/agent), from ``from_s``
    seconds on: the agent's answer (before it the agent's side carries ringing or hold music,
    and a call nobody answered has no conversation to judge)."""
    with wave.open(str(wav), "rb") as w:
        rate, count = w.getframerate(), w.getnchannels()
        w.setpos(min(int(from_s * rate), w.getnframes()))
        samples = array("h", w.readframes(w.getnframes() - w.tell()))
    vad = webrtcvad.Vad(settings.vad_aggressiveness)
    speech = {name: speech_seconds(samples[i::count], rate, vad)
              for i, name in enumerate(channels[:count])}
    heard = {name: s >= settings.min_speech_s for name, s in speech.items()}
    return AudioCheck(verdict=_verdict(heard), from_s=round(from_s, 3), speech_s=speech)


def _verdict(heard: dict[AudioChannel, bool]) -> AudioVerdict:
    if not any(heard.values()):
        return AudioVerdict.SILENT
    if not heard.get(AudioChannel.CUSTOMER, True):
        return AudioVerdict.CUSTOMER_SILENT
    if not heard.get(AudioChannel.AGENT, True):
        return AudioVerdict.AGENT_SILENT
    return AudioVerdict.CLEAN
