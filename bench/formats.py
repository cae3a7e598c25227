"""Archive formats: bytes per call-hour and transcode CPU per hour of audio, wav/flac/opus, mono
and stereo (uploader/transcode.py), measured in one run with WAV as the baseline; and the
uploader's calls per second archiving opus against archiving wav, on the same calls, the same
box and the same S3 (SeaweedFS on loopback), alternating.

The audio is a conversation made of the product's recorded voices: the customer and the agent
take turns of a few seconds, each side silent while the other talks (a stereo recording), and
their mix (mono). CPU is the process's own (``time.process_time``) for the transcode and the
decode that verifies it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from bench.upload import new_bucket, settings, workdir
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import AudioFormat as Format
from callrec.s3.versions import list_latest
from testbench.bench import Bench
from testbench.spool import sounding_call
from uploader.service import Uploader
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


def _drain(bench: Bench, spool: Path, work: Path, fmt: Format,
           complexity: int = 10) -> tuple[float, int, int]:
    """Seconds to archive the spool in ``fmt``, calls shipped, bytes of recording objects."""
    config = settings(bench, spool, new_bucket(bench), 4)
    config.upload.format, config.upload.opus_complexity = fmt, complexity
    config.evidence = EvidenceSettings(dir=work / "evidence", host="bench")  # sealing on
    uploader = Uploader(config)
    try:
        started = time.monotonic()
        summary = asyncio.run(uploader.drain())
        took = time.monotonic() - started
        stored = sum(v.size for v in list_latest(uploader.store, "recordings/")
                     if not v.key.endswith(".json"))
    finally:
        uploader.store.close()
        uploader.close()
    return took, len(summary.shipped), stored


CONFIGS = (("wav", Format.WAV, 10), ("opus", Format.OPUS, 10), ("opus c0", Format.OPUS, 0))


def throughput(bench: Bench, calls: int, minutes: float, rounds: int = 2) -> str:
    """wav, opus and opus at complexity 0 alternate ``rounds`` times on copies of the same
    spool (the transcoding workers' start is in each drain, as after a restart)."""
    took = dict.fromkeys((name for name, _, _ in CONFIGS), 0.0)
    stored, shipped = dict.fromkeys(took, 0), dict.fromkeys(took, 0)
    with workdir() as work:
        pristine = work / "pristine"
        pristine.mkdir()
        for _ in range(calls):
            sounding_call(pristine, minutes * 60)
        for r in range(rounds):
            for name, fmt, complexity in CONFIGS:
                spool = work / f"spool-{name.replace(' ', '')}-{r}"
                shutil.copytree(pristine, spool)
                seconds, n, size = _drain(bench, spool, work, fmt, complexity)
                took[name] += seconds
                shipped[name] += n
                stored[name] += size
    rate = {name: shipped[name] / took[name] for name in took}
    lines = [f"uploader, {calls} mono call(s) of {minutes:g} min, concurrency 4, {rounds} "
             "alternating rounds (S3 on loopback: the network costs nothing here)",
             f"  {'':<9}{'calls/s':>9}{'call-h/h':>10}{'MB stored':>11}{'x wav calls/s':>15}"
             f"{'x wav bytes':>13}"]
    for name in took:
        lines.append(f"  {name:<9}{rate[name]:>9.2f}{rate[name] * minutes * 60:>10.0f}"
                     f"{stored[name] / rounds / 1e6:>11.1f}{rate[name] / rate['wav']:>15.2f}"
                     f"{stored[name] / stored['wav']:>13.3f}")
    lines.append("  goal: opus >= 0.8x wav's calls/s, <= 0.167x its bytes")
    return "\n".join(lines)
