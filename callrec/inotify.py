"""A directory watch on Linux inotify, read on the asyncio loop (shared by the call flow, which
waits for recordings to be closed, and the uploader, which wakes when a manifest lands).

ctypes over libc rather than a dependency: two calls and a fixed-size record (inotify(7)).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

from callrec import CallrecError

log = logging.getLogger(__name__)

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_Q_OVERFLOW = 0x00004000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class WatchError(CallrecError, OSError):
    """The directory cannot be watched (no inotify, directory missing, watch limit)."""


class DirWatch:
    """Calls ``on_name(name)`` for each event in ``mask`` on a file directly in ``directory``.
    A queue overflow (events lost) calls ``on_overflow()``: callers then re-check by other
    means."""

    def __init__(self, directory: Path, mask: int, on_name: Callable[[str], None],
                 on_overflow: Callable[[], None] = lambda: None) -> None:
        self.directory = directory
        self.mask = mask
        self._on_name = on_name
        self._on_overflow = on_overflow
        self._fd = -1
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def start(self) -> None:
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise WatchError(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        if self._libc.inotify_add_watch(fd, os.fsencode(self.directory), self.mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise WatchError(f"inotify_add_watch {self.directory}: {os.strerror(err)}")
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._read)

    def close(self) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size:offset + _EVENT.size + length]
            offset += _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                log.error("inotify queue overflowed on %s: events lost", self.directory)
                self._on_overflow()
            elif raw:
                self._on_name(os.fsdecode(raw.rstrip(b"\0")))
