"""Archive formats: bytes per call-hour and transcode CPU per hour of audio, wav/flac/opus, mono
and stereo (uploader/transcode.py), measured in one run with WAV as the baseline.

The audio is a conversation made of the product's recorded voices: the customer and the agent
take turns of a few seconds, each side silent while the other talks (a stereo recording), and
their mix (mono). CPU is the process's own (``time.process_time``) for the transcode and the
decode that verifies it.
"""

from __future__ import annotations

import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from callrec.manifest import AudioFormat as Format
from uploader.transcode import transcode

REPO = Path(__file__).resolve().parents[1]
RATE = 8000


def _voice(prompt: str) -> np.ndarray:
    with wave.open(str(REPO / "sounds" / f"{prompt}.wav")) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def conversation(hours: float) -> np.ndarray:
    """(frames, 2): turns of the customer (left) and the agent (right)."""
    customer = [_voice(p) for p in ("en/callrec/warning", "en/callrec/closing")]
    agent = [_voice(p) for p in ("ja/callrec/notice", "ja/callrec/closing")]
    total, n = int(hours * 3600 * RATE), 0
    turns: list[np.ndarray] = []
    while n < total:
        for side, said in ((0, customer[len(turns) % 2]), (1, agent[len(turns) % 2])):
            turn = np.zeros((len(said) + RATE // 2, 2), dtype="<i2")
            turn[:len(said), side] = said
            turns.append(turn)
            n += len(turn)
    return np.concatenate(turns)[:total]


def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return path


def run(hours: float = 1.0, opus_kbps: int = 16) -> str:
    stereo = conversation(hours)
    mono = (stereo.astype(np.int32).sum(axis=1).clip(-32768, 32767)
            .astype("<i2").reshape(-1, 1))
    rows = []
    with tempfile.TemporaryDirectory(prefix="callrec-bench-formats-") as tmp:
        for layout, samples in (("mono", mono), ("stereo", stereo)):
            wav = _write(Path(tmp) / f"{layout}.wav", samples)
            base = wav.stat().st_size / hours
            rows.append((layout, "wav", base, 0.0, 1.0))
            for fmt in (Format.FLAC, Format.OPUS):
                started = time.process_time()
                out = transcode(wav, Path(tmp) / f"{layout}.{fmt.value}", fmt, opus_kbps)
                cpu = (time.process_time() - started) / hours
                rows.append((layout, fmt.value, out.size / hours, cpu, out.size / hours / base))
    lines = [f"archive formats ({hours:g} h of a two-party conversation, 8 kHz; opus "
             f"{opus_kbps} kbit/s, stereo as two uncoupled streams). Bytes per call-hour, "
             "transcode + verifying decode CPU s per hour of audio, bytes against WAV:",
             f"{'layout':<8}{'format':<8}{'MB/hour':>10}{'CPU s/hour':>12}{'x WAV':>8}"]
    lines += [f"{layout:<8}{fmt:<8}{size / 1e6:>10.2f}{cpu:>12.2f}{ratio:>8.3f}"
              for layout, fmt, size, cpu, ratio in rows]
    return "\n".join(lines)
