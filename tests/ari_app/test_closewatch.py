"""The kernel's word that a recording's writer closed it: inotify close events and the lease
probe, including a descriptor inherited by a forked child (the file is still open then)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ari_app.ami import AmiClient
from ari_app.closewatch import CloseWatch, CloseWatchError, writer_open
from ari_app.config import AmiSettings, SpoolSettings
from ari_app.recorder import Recorder, RecordingFailed, RecordingFile, now
from ari_app.wavfile import Header
from callrec.manifest import Recording
from tests.fakes import asterisk_wav

WAV_HEADER = b"RIFF\0\0\0\0WAVEfmt " + bytes(28)  # 44 bytes


def test_lease_probe_sees_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    with path.open("wb") as f:
        f.write(WAV_HEADER)
        assert writer_open(path) is True
    assert writer_open(path) is False
    assert writer_open(tmp_path / "missing.wav") is None


def test_lease_probe_sees_another_process_writing(tmp_path: Path) -> None:
    path = tmp_path / "b.wav"
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time\nf = open(sys.argv[1], 'wb')\nprint(flush=True)\n"
                              "time.sleep(30)", str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline()
        assert writer_open(path) is True
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    assert writer_open(path) is False


async def test_close_event_only_for_the_watched_name(tmp_path: Path) -> None:
    watch = CloseWatch(tmp_path)
    watch.start()
    try:
        mine, other = watch.closed("mine.wav"), watch.closed("other.wav")
        (tmp_path / "mine.wav").write_bytes(WAV_HEADER)
        (tmp_path / "mine.wav").read_bytes()  # a reader's close is no IN_CLOSE_WRITE
        await asyncio.wait_for(mine.wait(), 2)
        assert not other.is_set()
        watch.forget("mine.wav")
        assert watch.closed("mine.wav") is not mine
    finally:
        watch.close()


def test_watching_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    async def start() -> None:
        CloseWatch(tmp_path / "nope").start()

    with pytest.raises(CloseWatchError, match="nope"):
        asyncio.run(start())


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[CloseWatch, Recorder, RecordingFile]]:
    """A started watch on tmp_path, a recorder using it and a recording ``c1`` in it."""
    watch = CloseWatch(tmp_path)
    watch.start()
    spool = SpoolSettings(local_dir=tmp_path, asterisk_dir=tmp_path)
    rec = Recorder(AmiClient(AmiSettings()), spool, 1.0, watch)
    asterisk, local = rec.paths("c1")
    yield watch, rec, RecordingFile("c1", asterisk, local, "mm1", now())
    watch.close()


Watched = tuple[CloseWatch, Recorder, RecordingFile]


def record(active: RecordingFile) -> Recording:
    return Recording(path=str(active.local_path))


async def test_wait_closed_waits_for_the_writer_then_describes(watched: Watched) -> None:
    _, rec, active = watched
    f = active.local_path.open("wb")
    f.write(WAV_HEADER + bytes(1600))
    described = record(active)
    waiting = asyncio.ensure_future(rec.wait_closed(active, described, 5))
    await asyncio.sleep(0.3)
    assert not waiting.done() and not rec.is_closed(active)
    f.close()
    await asyncio.wait_for(waiting, 2)
    assert described.size == 44 + 1600 and described.sha256 and described.closed_at


async def test_wait_closed_gives_up_without_guessing(watched: Watched) -> None:
    _, rec, active = watched
    with active.local_path.open("wb") as f:
        f.write(WAV_HEADER)
        with pytest.raises(RecordingFailed, match="still open"):
            await rec.wait_closed(active, record(active), 0.3)


async def test_inherited_descriptor_keeps_the_file_open(watched: Watched) -> None:
    """A forked child holding the writer's descriptor: the writer's own close is not the end."""
    watch, rec, active = watched
    fd = os.open(active.local_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, WAV_HEADER)
    dup = os.dup(fd)  # stands in for the child's copy (same open file description)
    os.close(fd)
    assert not rec.is_closed(active)
    os.close(dup)
    await asyncio.wait_for(watch.closed(active.local_path.name).wait(), 2)
    assert rec.is_closed(active)


async def test_a_header_its_dead_writer_never_finished_is_repaired(watched: Watched) -> None:
    """Asterisk killed mid-call: the audio is there, the sizes are still 0. The close time is
    when the kernel reported it, not when callrec got round to describing the file."""
    watch, rec, active = watched
    watch.closed(active.local_path.name)  # as Recorder.start: watched before the file exists
    with active.local_path.open("wb") as f:
        f.write(asterisk_wav(None) + bytes(range(256)) * 64)
    await asyncio.sleep(0.3)
    looked = now()
    described = record(active)
    header = await rec.wait_closed(active, described, 2)
    data = active.local_path.read_bytes()
    assert described.header_repaired and data[:44] == asterisk_wav(len(data) - 44)
    assert data[44:] == bytes(range(256)) * 64  # only the 8 size bytes changed
    assert described.sha256 == hashlib.sha256(data).hexdigest()
    assert described.size == 44 + 16384 and described.duration_s == 1.024
    assert described.closed_at is not None and described.closed_at < looked
    assert header is Header.REPAIRED


async def test_an_unfinished_header_callrec_may_not_write_still_tells_the_writer_died(
    watched: Watched, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asterisk's files not group-writable: the header stays as it is, the file unchanged,
    but the recording is still known to be cut off."""
    _, rec, active = watched
    original = asterisk_wav(None) + bytes(1600)
    active.local_path.write_bytes(original)
    real_open = os.open

    def refuse_writes(path: Any, flags: int, *args: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr("ari_app.wavfile.os.open", refuse_writes)
    described = record(active)
    header = await rec.wait_closed(active, described, 2)
    assert header is Header.UNFINISHED and not described.header_repaired
    assert active.local_path.read_bytes() == original
    assert described.sha256 == hashlib.sha256(original).hexdigest()


async def test_a_writer_that_died_before_its_first_flush_left_an_unfinished_header(
    watched: Watched,
) -> None:
    """Asterisk killed a moment after the recording started: only the header is on disk."""
    _, rec, active = watched
    active.local_path.write_bytes(asterisk_wav(None))
    described = record(active)
    header = await rec.wait_closed(active, described, 2)
    assert header is Header.REPAIRED and described.header_repaired
    assert active.local_path.read_bytes() == asterisk_wav(0) and described.duration_s == 0


async def test_a_finished_header_is_left_alone(watched: Watched) -> None:
    _, rec, active = watched
    for original in (asterisk_wav(1600) + bytes(1600), asterisk_wav(0)):  # with and without audio
        active.local_path.write_bytes(original)
        described = record(active)
        header = await rec.wait_closed(active, described, 2)
        assert not described.header_repaired and active.local_path.read_bytes() == original
        assert header is Header.FINISHED


async def test_a_close_nobody_saw_is_dated_by_the_last_write(watched: Watched) -> None:
    """Closed while callrec was down: the file's last write (the header update at close), not
    the moment callrec looked, is when the recording ended."""
    _, rec, active = watched
    active.local_path.write_bytes(asterisk_wav(1600) + bytes(1600))
    os.utime(active.local_path, (1_790_000_000, 1_790_000_000))
    described = record(active)
    await rec.wait_closed(active, described, 2)
    assert described.closed_at is not None and described.closed_at.timestamp() == 1_790_000_000
