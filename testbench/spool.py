"""Finished calls written straight into a spool, for uploader tests and benchmarks.

The manifest model is the contract between the call flow and the uploader, so a call written
with it here is what the uploader sees from a real call, without placing one.
"""

from __future__ import annotations

import hashlib
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from callrec.ids import new_call_id
from callrec.manifest import (
    MONO,
    STEREO,
    AgentLeg,
    CallManifest,
    Notice,
    Party,
    Policy,
    Recording,
    RecordingStatus,
    normalise_number,
)
from callrec.reasons import StatusReason
from callrec.signing import sha256_file


def fake_call(spool: Path, size_mb: int, seconds_ago: float = 0, size_kb: int = 0,
              ) -> CallManifest:
    """A finished call as the call flow leaves it, with a recording of ``size_mb`` MiB plus
    ``size_kb`` KiB (the manifest model is the contract, so tests may write manifests with it)."""
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    call_id = new_call_id(at)
    wav = spool / f"{call_id}.wav"
    block = hashlib.sha256(call_id.encode()).digest() * 32768  # 1 MiB, distinct per call
    digest = hashlib.sha256()
    with wav.open("wb") as f:
        for i in range(size_mb):
            chunk = bytes([i % 256]) + block[1:]
            f.write(chunk)
            digest.update(chunk)
        tail = block[:size_kb << 10]
        f.write(tail)
        digest.update(tail)
    m = CallManifest(call_id=call_id, asterisk_uniqueid="1.1", policy=Policy.FORCE,
                     status=RecordingStatus.RECORDED, outcome="completed", entered_at=at,
                     caller=Party(number_raw="0312345678", number="0312345678"),
                     recording=Recording(path=str(wav), size=wav.stat().st_size,
                                         sha256=digest.hexdigest()))
    m.write_atomic(spool)
    return m


def varied_call(spool: Path, caller_raw: str = "0312345678", name: str = "",
                agents: tuple[str, ...] = ("agent-answer",), outcome: str = "completed",
                status: RecordingStatus = RecordingStatus.RECORDED, days_ago: float = 0,
                did: str = "0501234567", seconds: float = 60.0) -> CallManifest:
    """A finished call with the fields the archive searches on (a 16 KiB recording unless
    unrecorded); the first agent answered."""
    m = fake_call(spool, 0, seconds_ago=days_ago * 86400 + seconds, size_kb=16)
    legs = [AgentLeg(endpoint=a, channel=f"PJSIP/{a}-0000000{i}",
                     dial_status="ANSWER" if i == 0 else "NOANSWER",
                     answered_at=m.entered_at if i == 0 else None) for i, a in enumerate(agents)]
    update: dict[str, object] = {
        "caller": Party(number_raw=caller_raw, name_raw=name,
                        number=normalise_number(caller_raw)),
        "agents": legs, "outcome": outcome, "status": status, "did": did,
        "ended_at": m.entered_at + timedelta(seconds=seconds),
        "notice": Notice(prompt="callrec/notice", language="ja", played=True,
                         started_at=m.entered_at, ended_at=m.entered_at,
                         completed=outcome != "abandoned_in_notice")}
    if status is RecordingStatus.UNRECORDED:
        (spool / f"{m.call_id}.wav").unlink()
        update |= {"recording": None, "status_reason": StatusReason.POLICY_NEVER,
                   "policy": Policy.NEVER, "notice": Notice()}
    m = m.model_copy(update=update)
    m.write_atomic(spool)
    return m


def sounding_call(spool: Path, seconds: float, stereo: bool = False) -> CallManifest:
    """A finished call whose recording is a real 8 kHz 16-bit WAV of ``seconds``: a 440 Hz tone
    on the left (or only) channel, 1 kHz on the right, each over a little noise, for the
    transcoder (which must decode it back to the same length). Written a minute at a time."""
    at = datetime.now(UTC)
    call_id = new_call_id(at)
    wav = spool / f"{call_id}.wav"
    rate, channels = 8000, 2 if stereo else 1
    rng = np.random.default_rng(7)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        done, total = 0, int(seconds * rate)
        while done < total:
            t = np.arange(done, min(total, done + 60 * rate)) / rate
            sides = [np.sin(2 * np.pi * f * t) * 6000 + rng.normal(0, 300, t.size)
                     for f in (440, 1000)[:channels]]
            w.writeframes(np.stack(sides, axis=1).astype("<i2").tobytes())
            done += t.size
    m = CallManifest(call_id=call_id, asterisk_uniqueid="1.2", policy=Policy.FORCE,
                     status=RecordingStatus.RECORDED, outcome="completed", entered_at=at,
                     caller=Party(number_raw="0312345678", number="0312345678"),
                     recording=Recording(path=str(wav), size=wav.stat().st_size,
                                         duration_s=round(total / rate, 3),
                                         channels=list(STEREO if stereo else MONO),
                                         sha256=sha256_file(wav)))
    m.write_atomic(spool)
    return m
