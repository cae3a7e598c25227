"""Stereo recordings: whether this PBX may make them, and the WAV callrec makes of each.

MixMonitor's ``D`` option writes what the channel sends (the customer) and what it is sent (the
agents, the prompts) interleaved, left then right, as headerless 16-bit signed little-endian
samples at 8 kHz (``format_slin``, apps/app_mixmonitor.c ``mixmonitor_thread``; the file must end
in ``.raw``). A raw file has no header, so nothing in it says whether its writer finished:
callrec proves the recording by other means (ari_app/recorder.py) and, once the file is proven
closed, writes ``<id>.wav``: a 2-channel WAV header before the very same bytes. The raw file stays
in the spool until the uploader has archived the WAV.
"""

from __future__ import annotations

import hashlib
import os
import re
import wave
from dataclasses import dataclass
from pathlib import Path

from callrec.durable import fsync_dir

RATE = 8000  # app_mixmonitor.c: the interleaved frame is format_slin, whatever the codec
FRAME = 4  # bytes per stereo sample frame: two 16-bit samples

# The first release of each branch with commit 6144b6b ("app_mixmonitor: Fix duplex recording
# for non 8K codecs", Asterisk issue #1779): before it, D on a call whose codec is not 8 kHz
# (G.722, Opus, slin16) writes frames too large for the stereo buffer, a garbled file.
_FIXED_IN = {20: (20, 21, 0), 22: (22, 11, 0), 23: (23, 5, 0)}
_FIRST_FIXED_MAJOR = 24
_VERSION = re.compile(r"(?:certified/)?(\d+)\.(\d+)\.(\d+)")


def stereo_refusal(version: str | None, on_8k_only_pbx: bool) -> str | None:
    """Why this PBX must not record in stereo, or None if it may. ``version`` is Asterisk's
    own (``GET /asterisk/info``: "22.10.1+dfsg+~cs6.15.60671435-1"); unknown is refused."""
    if on_8k_only_pbx:
        return None
    match = _VERSION.match(version or "")
    if match is None:
        return (f"Asterisk version {version!r} unknown: MixMonitor D garbles non-8 kHz codecs "
                "before 22.11.0 (issue #1779)")
    found = tuple(int(g) for g in match.groups())
    fixed = _FIXED_IN.get(found[0])
    if found[0] >= _FIRST_FIXED_MAJOR or (fixed is not None and found >= fixed):
        return None
    first = ".".join(map(str, fixed)) if fixed else f"{_FIRST_FIXED_MAJOR}.0.0"
    return (f"Asterisk {match.group(0)} is older than {first}: MixMonitor D garbles non-8 kHz "
            "codecs (issue #1779); set recording.stereo_on_8k_only_pbx if every codec is 8 kHz")


@dataclass(frozen=True)
class RawStream:
    """The raw stream as Asterisk left it: what the manifest's ``source_*`` fields say."""

    size: int
    sha256: str
    torn: int  # bytes of a last frame cut short (a writer killed mid-write), not in the WAV


def wrap(raw: Path, wav: Path) -> RawStream:
    """Write ``wav`` from ``raw`` (proven closed): a 2-channel 16-bit 8 kHz header before the
    raw bytes, atomically and durably (temporary file, fsync, rename, fsync of the directory),
    so a crash leaves no half WAV and doing it again gives the same file. The raw file is read
    once: its SHA-256 as it goes."""
    digest, tmp = hashlib.sha256(), wav.with_name(f".{wav.name}.tmp")
    try:
        with raw.open("rb") as src, tmp.open("wb") as dst:
            size = os.fstat(src.fileno()).st_size
            keep = size - size % FRAME
            out = wave.open(dst, "wb")  # stdlib: the header only, no encoding
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(RATE)
            written = 0
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                part = chunk[:max(0, keep - written)]
                out.writeframesraw(part)
                written += len(part)
            out.close()  # writes the sizes into the header; dst stays open
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, wav)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(wav.parent)
    return RawStream(size, digest.hexdigest(), size - keep)
