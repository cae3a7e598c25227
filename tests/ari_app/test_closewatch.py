"""The kernel's word that a recording's writer closed it: inotify close events and the lease
probe, including a descriptor inherited by a forked child (the file is still open then)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ari_app.ami import AmiClient
from ari_app.closewatch import CloseWatch, CloseWatchError, writer_open
from ari_app.config import AmiSettings, SpoolSettings
from ari_app.recorder import ActiveRecording, Recorder, RecordingFailed, now

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
async def watched(tmp_path: Path) -> AsyncIterator[tuple[CloseWatch, Recorder, ActiveRecording]]:
    """A started watch on tmp_path, a recorder using it and a recording ``c1`` in it."""
    watch = CloseWatch(tmp_path)
    watch.start()
    spool = SpoolSettings(local=tmp_path, asterisk_dir=str(tmp_path))
    rec = Recorder(AmiClient(AmiSettings()), spool, 1.0, watch)
    asterisk, local = rec.paths("c1")
    yield watch, rec, ActiveRecording("c1", asterisk, local, "mm1", now(), now())
    watch.close()


Watched = tuple[CloseWatch, Recorder, ActiveRecording]


async def test_wait_closed_waits_for_the_writer_then_describes(watched: Watched) -> None:
    _, rec, active = watched
    f = active.local_path.open("wb")
    f.write(WAV_HEADER + bytes(1600))
    waiting = asyncio.ensure_future(rec.wait_closed(active, 5))
    await asyncio.sleep(0.3)
    assert not waiting.done() and not rec.is_closed(active)
    f.close()
    record = await asyncio.wait_for(waiting, 2)
    assert record.size == 44 + 1600 and record.sha256 and record.closed_at


async def test_wait_closed_gives_up_without_guessing(watched: Watched) -> None:
    _, rec, active = watched
    with active.local_path.open("wb") as f:
        f.write(WAV_HEADER)
        with pytest.raises(RecordingFailed, match="still open"):
            await rec.wait_closed(active, 0.3)


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
