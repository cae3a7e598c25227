"""Kernel-proven end of a recording, without asking Asterisk to fork.

MixMonitor writes the WAV header's sizes only when it closes the file, so a manifest may describe
the file only once the writer has closed it. MixMonitor's ``Command`` option could drop a marker
then, but Asterisk runs it through ``ast_safe_system()`` (main/asterisk.c), a ``fork()`` of the
whole PBX per call: on the bench that was a quarter of Asterisk's CPU (page-table copies, TLB
shoot-downs across its threads) and tens of ms of call-setup jitter for every other call.

Two kernel facts replace it, both for a file in the spool (a local file system):

* inotify ``IN_CLOSE_WRITE`` on the spool directory: the last writer of ``<call_id>.wav`` closed
  it (generated on the final close of the open file, so a descriptor inherited by a forked child
  still counts as open);
* a read-lease probe (``F_SETLEASE F_RDLCK``, fcntl(2)): it fails with ``EAGAIN`` while anyone
  has the file open for writing. It needs the file's owner uid or ``CAP_LEASE``; without either it
  cannot tell, and the inotify event alone proves the close. The probe also covers events missed
  while callrec was down (a call adopted from the journal after a restart).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

from ari_app import AriAppError
from callrec.inotify import IN_CLOSE_WRITE, DirWatch, WatchError


class CloseWatchError(AriAppError):
    """The spool cannot be watched (no inotify, directory missing)."""


def writer_open(path: Path) -> bool | None:
    """True while some process has ``path`` open for writing, False when none has, None when
    this process may not tell (no lease rights, or a file system without leases)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    except OSError as exc:
        # EAGAIN: open for writing somewhere. EACCES/EPERM: not the owner and no CAP_LEASE;
        # EINVAL: a file system without leases.
        return True if exc.errno == errno.EAGAIN else None
    finally:
        os.close(fd)
    return False


class CloseWatch:
    """One inotify watch on the spool; ``closed(name)`` is set when ``name`` is closed after
    writing. Events are read on the event loop: a read is a few hundred bytes."""

    def __init__(self, directory: Path) -> None:
        self._closed: dict[str, asyncio.Event] = {}
        # When each close was seen: the end of a recording whose call ended out of sight (the
        # PBX restarted, ARI was away) is known from it, not from when callrec caught up.
        self._seen_at: dict[str, datetime] = {}
        # A lost event (queue overflow) is caught by the waiters' periodic re-probe; without
        # lease rights it ends in recording_not_closed, never in a guess.
        self._watch = DirWatch(directory, IN_CLOSE_WRITE, self._on_close)

    def start(self) -> None:
        try:
            self._watch.start()
        except WatchError as exc:
            raise CloseWatchError(str(exc)) from exc

    def close(self) -> None:
        self._watch.close()

    def closed(self, name: str) -> asyncio.Event:
        """The event for ``name`` (created on first use; watch before you probe)."""
        return self._closed.setdefault(name, asyncio.Event())

    def closed_at(self, name: str) -> datetime | None:
        """When the close of ``name`` was seen (None: not seen, or not trusted)."""
        return self._seen_at.get(name) if self.closed(name).is_set() else None

    def distrust(self, name: str) -> None:
        """A close seen while a writer still has the file open (an inherited descriptor)."""
        self.closed(name).clear()
        self._seen_at.pop(name, None)

    def forget(self, name: str) -> None:
        self._closed.pop(name, None)
        self._seen_at.pop(name, None)

    def _on_close(self, name: str) -> None:
        event = self._closed.get(name)
        if event is not None:
            self._seen_at.setdefault(name, datetime.now(UTC))
            event.set()
