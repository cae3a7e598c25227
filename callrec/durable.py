"""Durable writes: a file replaced atomically, several in order, all of a buffer to a descriptor.

Below the manifest, the journal, the evidence chain and the spool's recordings alike."""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``: write(2) may write less than asked (a disk filling up)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomic(directory: Path, name: str, data: bytes) -> Path:
    """``directory/name`` replaced atomically and durably by ``data`` (tmp, fsync, rename, fsync
    of the directory): a reader never sees half of it, a crash leaves the old or the new one."""
    return write_atomic_group(directory, [(name, data)])[-1]


def write_atomic_group(directory: Path, files: list[tuple[str, bytes]]) -> list[Path]:
    """Several files of one directory, each atomic, renamed in the given order, then one fsync
    of the directory for them all. A reader that sees a later file also finds the earlier
    ones: the renames are metadata operations of one directory, which a journaling file
    system (ext4, XFS) commits in order. A failure before the renames leaves no file and no
    temporary one behind (a full disk keeps no half manifest)."""
    tmps: list[Path] = []
    try:
        for name, data in files:
            tmp = directory / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
            tmps.append(tmp)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    finals = [directory / name for name, _ in files]
    for tmp, final in zip(tmps, finals, strict=True):
        os.replace(tmp, final)
    fsync_dir(directory)
    return finals


def fsync_dir(directory: Path) -> None:
    """Make the renames and creations in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
