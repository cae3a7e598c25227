"""Read what MixMonitor wrote: WAV completeness, duration and energy, without third-party code."""

from __future__ import annotations

import math
import struct
import time
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

from testbench import BenchError


@dataclass(frozen=True)
class WavInfo:
    path: Path
    rate: int
    frames: int
    complete: bool  # header sizes match the file: the writer closed it

    @property
    def duration(self) -> float:
        return self.frames / self.rate


def wav_info(path: Path) -> WavInfo:
    """Parse the header. MixMonitor writes the RIFF and data sizes only when it closes the file
    (app_mixmonitor.c / formats/format_wav.c update_header), so a matching header means done."""
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(44)
    if len(header) < 44 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return WavInfo(path, 8000, 0, complete=False)
    riff_size = struct.unpack_from("<I", header, 4)[0]
    rate = struct.unpack_from("<I", header, 24)[0]
    block_align = struct.unpack_from("<H", header, 32)[0] or 2
    data_size = struct.unpack_from("<I", header, 40)[0]
    complete = riff_size == size - 8 and data_size == size - 44
    return WavInfo(path, rate, (size - 44) // block_align, complete)


def wait_complete(path: Path, timeout: float = 10.0) -> WavInfo:
    """Wait until the recording exists and its writer has closed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            info = wav_info(path)
            if info.complete:
                return info
        time.sleep(0.05)
    state = "incomplete" if path.exists() else "missing"
    raise BenchError(f"recording {path} still {state} after {timeout:.0f} s")


def rms_dbfs(path: Path, start: float = 0.0, end: float | None = None) -> float:
    """RMS level of a 16-bit mono WAV between ``start`` and ``end`` seconds, in dBFS."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise BenchError(f"{path}: expected 16-bit mono, got {w.getparams()}")
        rate = w.getframerate()
        w.setpos(min(int(start * rate), w.getnframes()))
        count = (w.getnframes() if end is None else int(end * rate)) - w.tell()
        samples = array("h", w.readframes(max(count, 0)))
    if not samples:
        return -math.inf
    mean_square = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(mean_square / 32768**2) if mean_square else -math.inf


def envelope(path: Path, frame_ms: int = 20, seconds: float | None = None) -> list[float]:
    """RMS per frame of a 16-bit mono WAV (the loudness contour, robust to codec and gain)."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        total = w.getnframes() if seconds is None else min(w.getnframes(), int(seconds * rate))
        samples = array("h", w.readframes(total))
    step = rate * frame_ms // 1000
    return [math.sqrt(sum(s * s for s in samples[i:i + step]) / step)
            for i in range(0, len(samples) - step + 1, step)]


def _pearson(a: list[float], b: list[float]) -> float:
    n = min(len(a), len(b))
    if n < 2:
        return 0.0
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = math.sqrt(sum((x - ma) ** 2 for x in a))
    vb = math.sqrt(sum((y - mb) ** 2 for y in b))
    return cov / (va * vb) if va and vb else 0.0


def starts_with(recording: Path, prompt: Path, max_lag_s: float = 0.5) -> tuple[float, float]:
    """How well the start of ``recording`` matches ``prompt``'s loudness contour.

    Returns (best correlation, lag in seconds). Both must be 8 kHz-or-any 16-bit mono WAVs."""
    reference = envelope(prompt)
    seconds = len(reference) * 0.02 + max_lag_s
    contour = envelope(recording, seconds=seconds)
    best = (-1.0, 0.0)
    for lag in range(int(max_lag_s / 0.02) + 1):
        score = _pearson(contour[lag:], reference)
        if score > best[0]:
            best = (score, lag * 0.02)
    return best


def channel(path: Path, index: int, out: Path) -> Path:
    """One channel of a 16-bit stereo WAV as a mono WAV (0: left, 1: right), so the mono
    measures above read it."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 2:
            raise BenchError(f"{path}: expected 16-bit stereo, got {w.getparams()}")
        rate, samples = w.getframerate(), array("h", w.readframes(w.getnframes()))
    with wave.open(str(out), "wb") as mono:
        mono.setnchannels(1)
        mono.setsampwidth(2)
        mono.setframerate(rate)
        mono.writeframes(samples[index::2].tobytes())
    return out


def tone_dbfs(path: Path, freq: float, start: float, end: float) -> float:
    """The level of one frequency in a 16-bit mono WAV between ``start`` and ``end`` seconds,
    in dBFS of a full-scale sine (the Goertzel filter: one DFT bin, no third-party code), to
    tell one party's test tone from another's."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        w.setpos(min(int(start * rate), w.getnframes()))
        samples = array("h", w.readframes(max(int((end - start) * rate), 0)))
    if not samples:
        return -math.inf
    coeff, s1, s2 = 2 * math.cos(2 * math.pi * freq / rate), 0.0, 0.0
    for x in samples:
        s1, s2 = x / 32768 + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    amplitude = 2 * math.sqrt(max(power, 0.0)) / len(samples)
    return 20 * math.log10(amplitude) if amplitude > 0 else -math.inf


def silent_spans(path: Path, min_s: float = 0.5) -> list[tuple[float, float]]:
    """Where a 16-bit mono WAV holds nothing but zeros for ``min_s`` or longer, as (start, end)
    seconds: what a muted MixMonitor writes (main/audiohook.c clears each muted side's samples).
    A call's real audio, even a quiet line, is never exact zeros for that long."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise BenchError(f"{path}: expected 16-bit mono, got {w.getparams()}")
        rate, samples = w.getframerate(), array("h", w.readframes(w.getnframes()))
    spans, start = [], None
    for i, s in enumerate([*samples, 1]):  # (a sentinel closes a run at the end)
        if s == 0 and start is None:
            start = i
        elif s != 0 and start is not None:
            if i - start >= min_s * rate:
                spans.append((start / rate, i / rate))
            start = None
    return spans


def heard_at(recording: Path, prompt: Path, near_s: float, window_s: float = 1.5) -> float:
    """The best correlation of ``prompt``'s loudness contour with the recording's, within
    ``window_s`` of ``near_s`` seconds into it."""
    reference, contour = envelope(prompt), envelope(recording)
    best, start = -1.0, max(0, int((near_s - window_s) / 0.02))
    for lag in range(start, int((near_s + window_s) / 0.02) + 1):
        window = contour[lag:lag + len(reference)]
        if len(window) < len(reference) // 2:
            break
        best = max(best, _pearson(window, reference))
    return best


def best_match(recording: Path, prompt: Path) -> tuple[float, float]:
    """(correlation, seconds into ``recording``) of where ``prompt``'s loudness contour fits
    best, over the whole recording, nine tenths of the prompt at least inside it (a phone's
    dump of what it heard may lose the last packets)."""
    reference, contour = envelope(prompt), envelope(recording)
    best = (-1.0, 0.0)
    for lag in range(len(contour) - len(reference) * 9 // 10 + 1):
        score = _pearson(contour[lag:lag + len(reference)], reference)
        if score > best[0]:
            best = (score, lag * 0.02)
    return best
