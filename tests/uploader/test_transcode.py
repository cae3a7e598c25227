"""FLAC and Ogg Opus from a recording's WAV (uploader/transcode.py), on the product's recorded
voices: decoded length, lossless FLAC, the two parties kept apart in low-bitrate stereo Opus."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from callrec.manifest import AudioFormat as Format
from uploader import transcode as tc
from uploader.transcode import TranscodeError, transcode

REPO = Path(__file__).resolve().parents[2]


def voice(prompt: str) -> np.ndarray:
    with wave.open(str(REPO / "sounds" / f"{prompt}.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def two_parties() -> np.ndarray:
    """The customer talks, then the agent: each side silent while the other talks."""
    a, b = voice("en/callrec/warning"), voice("ja/callrec/closing")
    n = min(len(a), len(b))
    quiet = np.zeros(n, dtype="<i2")
    return np.stack([np.concatenate([a[:n], quiet]), np.concatenate([quiet, b[:n]])], axis=1)


def decoded(path: Path) -> np.ndarray:
    """All samples, (frames, channels), at the decoder's rate, on the 16-bit scale."""
    parts = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            data, channels = frame.to_ndarray(), len(frame.layout.channels)
            data = data.T if frame.format.is_planar else data.reshape(-1, channels)
            parts.append(data * 32768 if data.dtype.kind == "f" else data)
    return np.concatenate(parts)


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(float) ** 2) + 1e-9))


@pytest.mark.parametrize("fmt", [Format.FLAC, Format.OPUS])
@pytest.mark.parametrize("stereo", [False, True], ids=["mono", "stereo"])
def test_the_archive_decodes_to_the_recordings_length(tmp_path: Path, fmt: Format,
                                                      stereo: bool) -> None:
    samples = two_parties() if stereo else voice("ja/callrec/notice")
    wav = write_wav(tmp_path / "c.wav", samples)
    out = transcode(wav, tmp_path / f"c.{fmt.value}", fmt)
    back = decoded(out.path)
    rate = 48000 if fmt is Format.OPUS else 8000
    assert abs(len(back) * 8000 / rate - len(samples)) <= 160  # one 20 ms frame
    assert back.shape[1] == (2 if stereo else 1)
    assert out.duration_s == round(len(samples) / 8000, 3) and out.size < wav.stat().st_size
    assert wav.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_flac_is_lossless(tmp_path: Path) -> None:
    samples = two_parties()
    out = transcode(write_wav(tmp_path / "c.wav", samples), tmp_path / "c.flac", Format.FLAC)
    assert np.array_equal(decoded(out.path), samples)


def test_low_bitrate_stereo_opus_keeps_the_parties_apart(tmp_path: Path) -> None:
    """At 16 kbit/s a coupled stereo stream folds to mono (measured: each side at the other's
    level); two uncoupled streams do not."""
    samples = two_parties()
    out = transcode(write_wav(tmp_path / "c.wav", samples), tmp_path / "c.opus", Format.OPUS,
                    opus_kbps=16)
    back = decoded(out.path)
    half = len(back) // 2
    customer_talks, agent_talks = back[:half], back[half:]
    assert level_db(customer_talks[:, 0]) > 55 and level_db(agent_talks[:, 1]) > 55
    assert level_db(customer_talks[:, 1]) < level_db(customer_talks[:, 0]) - 40
    assert level_db(agent_talks[:, 0]) < level_db(agent_talks[:, 1]) - 40
    seconds = len(samples) / 8000
    assert out.size * 8 / seconds < 256_000 / 6  # a sixth of the stereo WAV (8 kHz, 16-bit)


def test_a_bad_recording_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    wav = tmp_path / "c.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(TranscodeError, match="c.wav -> opus"):
        transcode(wav, tmp_path / "c.opus", Format.OPUS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.wav"]


def test_a_transcode_that_dies_half_way_leaves_no_archive_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed mid-encode (here: an error after the first chunk), nothing at the archive's name
    and no temporary file: the next run starts again from the WAV."""
    wav = write_wav(tmp_path / "c.wav", np.tile(voice("ja/callrec/notice"), 6))
    monkeypatch.setattr(tc, "CHUNK_FRAMES", 8000)
    calls = {"n": 0}
    real = av.AudioFrame.from_ndarray

    def dying(*args: object, **kwargs: object) -> av.AudioFrame:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # not an error transcode knows: it still cleans up
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(av.AudioFrame, "from_ndarray", dying)
    with pytest.raises(KeyboardInterrupt):
        transcode(wav, tmp_path / "c.opus", Format.OPUS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.wav"]
