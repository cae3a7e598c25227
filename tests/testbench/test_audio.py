from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

import pytest

from testbench import BenchError
from testbench.audio import rms_dbfs, wait_complete, wav_info


def write_tone(path: Path, seconds: float, amplitude: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        frames = [int(amplitude * math.sin(2 * math.pi * 440 * n / 8000))
                  for n in range(int(seconds * 8000))]
        w.writeframes(struct.pack(f"<{len(frames)}h", *frames))


def test_closed_file_is_complete_with_its_duration(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    write_tone(path, 2.0, 8000)
    info = wav_info(path)
    assert info.complete and info.rate == 8000 and info.duration == pytest.approx(2.0)


def test_header_not_yet_updated_is_incomplete(tmp_path: Path) -> None:
    """While MixMonitor writes, the header still says 0 bytes of data."""
    path = tmp_path / "b.wav"
    write_tone(path, 1.0, 8000)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 36)
    data[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    assert not wav_info(path).complete
    with pytest.raises(BenchError, match="incomplete"):
        wait_complete(path, timeout=0.2)
    with pytest.raises(BenchError, match="missing"):
        wait_complete(tmp_path / "none.wav", timeout=0.1)


def test_rms_tells_tone_from_silence(tmp_path: Path) -> None:
    loud, quiet = tmp_path / "loud.wav", tmp_path / "quiet.wav"
    write_tone(loud, 1.0, 10000)
    write_tone(quiet, 1.0, 0)
    assert rms_dbfs(loud) == pytest.approx(20 * math.log10(10000 / 32768 / math.sqrt(2)), abs=0.2)
    assert rms_dbfs(quiet) == -math.inf


def test_starts_with_finds_the_prompt_and_rejects_other_audio(tmp_path: Path) -> None:
    from testbench.audio import starts_with

    prompt = Path(__file__).resolve().parents[2] / "sounds/en/callrec/notice.wav"
    with wave.open(str(prompt)) as w:
        frames = w.readframes(w.getnframes())
    padded = tmp_path / "rec.wav"
    with wave.open(str(padded), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 1600 + frames + b"\0\0" * 8000)  # 0.2 s late, then silence
    score, lag = starts_with(padded, prompt)
    assert score > 0.95 and lag == pytest.approx(0.2)
    tone = tmp_path / "tone.wav"
    write_tone(tone, 6.0, 8000)
    assert starts_with(tone, prompt)[0] < 0.5
