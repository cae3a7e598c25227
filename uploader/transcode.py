"""A recording's archive format: FLAC (lossless) or Ogg Opus, made from the spool's WAV by PyAV.

Asterisk writes no Opus and no FLAC itself (its MixMonitor writes what its format modules do), so
the encoding happens here, with FFmpeg's encoders through PyAV (its wheels bundle libopus and
FLAC): never a hand-written encoder. Three things a call recording needs from it:

- **The parties stay apart.** A stereo recording is the customer on the left, what they heard on
  the right (ari_app/rawfile.py). libopus codes a stereo pair as one coupled stream and, below
  about 19 kbit/s, folds it to mono (opus_encoder.c ``stereo_voice_threshold``); measured here,
  at 16 kbit/s each side came out at the other's level. Channel mapping family 255 codes each
  channel as its own mono stream instead (RFC 7845 5.1.1.4: no coupling), so a low bitrate keeps
  them apart; Chromium plays it.
- **Nothing is cut.** The transcode is decoded again and its length compared with the WAV's (Opus
  within one 20 ms frame; FLAC exactly) before anything is archived or removed.
- **A kill -9 loses nothing.** The output is written to a temporary name, made durable, then
  renamed: a transcode killed half-way leaves the WAV as it was and no file the uploader could take
  for a finished one.
"""

from __future__ import annotations

import logging
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from callrec.durable import fsync_dir
from callrec.manifest import AudioFormat as Format
from callrec.signing import sha256_file
from uploader import UploaderError

log = logging.getLogger(__name__)
CHUNK_FRAMES = 8000 * 20  # 20 s of audio at a time: a long call never sits in memory whole
OPUS_RATE = 48000  # what an Opus decoder gives back, whatever went in (RFC 6716 2)


_CONTAINER = {Format.FLAC: "flac", Format.OPUS: "ogg"}
_CODEC = {Format.FLAC: "flac", Format.OPUS: "libopus"}


class TranscodeError(UploaderError):
    """The transcode failed or did not decode back to the recording's length: keep the WAV."""


@dataclass(frozen=True)
class Encoded:
    path: Path
    size: int
    sha256: str
    duration_s: float


def transcode(wav: Path, out: Path, fmt: Format, opus_kbps: int = 16,
              opus_complexity: int = 10) -> Encoded:
    """``out`` in ``fmt`` from ``wav`` (16-bit PCM, mono or stereo), verified by decoding it.
    Raises TranscodeError (nothing left at ``out``) if it cannot be made or does not check."""
    # This process's own temporary name: a worker of an uploader killed with -9 may still be
    # finishing one (uploader/formats.py makes workers die with it; this is the second guard).
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with wave.open(str(wav), "rb") as src:
            rate, channels, frames = src.getframerate(), src.getnchannels(), src.getnframes()
            if src.getsampwidth() != 2:
                raise TranscodeError(f"{wav.name}: {8 * src.getsampwidth()}-bit, not 16-bit PCM")
            _encode(src, tmp, fmt, rate, channels, opus_kbps, opus_complexity)
        _verify(tmp, fmt, rate, frames)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except (OSError, EOFError, wave.Error, av.FFmpegError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise TranscodeError(f"{wav.name} -> {fmt.value}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Encoded(out, out.stat().st_size, sha256_file(out), round(frames / rate, 3))


def made(wav: Path, out: Path, fmt: Format, opus_kbps: int = 16,
         opus_complexity: int = 10) -> Encoded:
    """``out``: reused if an earlier run made it and it still checks, else encoded now."""
    if out.exists():
        try:
            return checked(wav, out, fmt)
        except TranscodeError as exc:
            log.warning("%s does not check (%s); encoding again", out.name, exc)
            out.unlink(missing_ok=True)
    return transcode(wav, out, fmt, opus_kbps, opus_complexity)


def checked(wav: Path, out: Path, fmt: Format) -> Encoded:
    """An ``out`` an earlier run made (renamed into place only once verified), decoded once
    more against ``wav``: a restart reuses it rather than encoding again."""
    try:
        with wave.open(str(wav), "rb") as src:
            rate, frames = src.getframerate(), src.getnframes()
        _verify(out, fmt, rate, frames)
    except (OSError, EOFError, wave.Error, av.FFmpegError, ValueError) as exc:
        raise TranscodeError(f"{out.name}: {exc}") from exc
    return Encoded(out, out.stat().st_size, sha256_file(out), round(frames / rate, 3))


def _encode(src: wave.Wave_read, tmp: Path, fmt: Format, rate: int, channels: int,
            opus_kbps: int, complexity: int) -> None:
    layout = "stereo" if channels == 2 else "mono"
    container: Any = av.open(str(tmp), "w", format=_CONTAINER[fmt])
    try:
        stream = container.add_stream(_CODEC[fmt], rate=rate, layout=layout)
        if fmt is Format.OPUS:
            stream.bit_rate = opus_kbps * 1000
            # libopus tunes for speech; family 255 when stereo: two uncoupled mono streams.
            # complexity (FFmpeg's compression_level for libopus): CPU against quality at the
            # same size; libopus's default is 10.
            stream.codec_context.options = {
                "application": "voip", "compression_level": str(complexity),
                **({"mapping_family": "255"} if channels == 2 else {})}
        while chunk := src.readframes(CHUNK_FRAMES):
            samples = np.frombuffer(chunk, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()


def _verify(path: Path, fmt: Format, rate: int, frames: int) -> None:
    """Decode it all; its length must be the WAV's, within one Opus frame (20 ms)."""
    with av.open(str(path)) as container:
        decoded = sum(f.samples for f in container.decode(audio=0))
    got = decoded * rate / OPUS_RATE if fmt is Format.OPUS else decoded
    slack = rate * 0.02 if fmt is Format.OPUS else 0
    if abs(got - frames) > slack:
        raise TranscodeError(f"{path.name} decodes to {got:.0f} frames, the WAV has {frames}")

