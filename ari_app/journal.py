"""In-flight calls on disk, so a callrec restart (even kill -9) still ends each call with its one
manifest.

Once the flow has handed a call off (and whenever its agents or outcome change), its partial
manifest is appended as one JSON line to ``<spool>/.inflight/journal.jsonl``; when its manifest is
written a ``{"done": call_id}`` line follows. At startup the service adopts every call whose last
line is not "done": if the channel still exists it follows it again; if it is gone it finishes the
call with what it knows (ari_app/closewatch.py proves whether the file was closed).

One append (a ``write(2)`` into the page cache, no fsync) per change, on the event loop: a file
per call (create, write, rename, unlink) cost a tenth of callrec's CPU at 20 calls/s. Losing the
newest lines to a power cut costs detail (an agent), never the call: its hand-off line was written
seconds earlier. The log is emptied when no call is in flight and rewritten with the live calls
only when it grows past ``COMPACT_BYTES``. An exclusive ``flock`` keeps a second callrec off the
same spool (two writers would finish each other's calls).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from ari_app import AriAppError
from callrec.durable import write_all
from callrec.manifest import CallManifest

log = logging.getLogger(__name__)

COMPACT_BYTES = 8 << 20


class InflightJournalError(AriAppError):
    """The journal cannot be opened (another callrec owns this spool, or it is unwritable)."""


class InflightJournal:
    def __init__(self, spool: Path, compact_bytes: int = COMPACT_BYTES) -> None:
        self.directory = spool / ".inflight"
        self.path = self.directory / "journal.jsonl"
        self.compact_bytes = compact_bytes
        self._fd = -1
        self._size = 0
        self._live: dict[str, bytes] = {}  # call id -> its newest line

    def open(self) -> list[CallManifest]:
        """Lock and read the journal; the calls still in flight (oldest first)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise InflightJournalError(
                f"{self.path} is locked: another callrec uses this spool") from exc
        self._fd = fd
        entries = self._read() + self._legacy_entries()
        self._rewrite()  # drop finished calls and torn lines now
        return entries

    def _read(self) -> list[CallManifest]:
        with open(self.path, "rb") as f:
            lines = f.read().splitlines()
        entries: dict[str, CallManifest] = {}
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                if "done" in record:
                    self._live.pop(str(record["done"]), None)
                    entries.pop(str(record["done"]), None)
                else:
                    entry = CallManifest.model_validate(record)
                    self._live[entry.call_id], entries[entry.call_id] = line + b"\n", entry
            except (ValueError, ValidationError) as exc:
                # A torn last line after a crash, or damage: kept aside for a human, never lost.
                log.error("journal line %d unreadable (%s): kept in journal.bad", number,
                          str(exc).splitlines()[0])
                with open(self.directory / "journal.bad", "ab") as bad:
                    bad.write(line + b"\n")
        return list(entries.values())

    def _legacy_entries(self) -> list[CallManifest]:
        """Per-call files of callrec versions before the single log: adopted, then folded in."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                entry = CallManifest.read(path)
            except (OSError, ValidationError) as exc:
                log.error("in-flight entry %s unreadable (%s): moved to .bad", path.name, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if entry.call_id not in self._live:
                self._live[entry.call_id] = entry.model_dump_json().encode() + b"\n"
                found.append(entry)
            path.unlink()
        return found

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    def save(self, entry: CallManifest) -> None:
        line = entry.model_dump_json().encode() + b"\n"
        self._append(line)
        self._live[entry.call_id] = line

    def remove(self, call_id: str) -> None:
        if self._live.pop(call_id, None) is None:
            return
        if not self._live and self._size >= self.compact_bytes // 8:
            self._rewrite()  # nothing in flight: start the log afresh
        else:
            self._append(json.dumps({"done": call_id}).encode() + b"\n")
            if self._size >= self.compact_bytes:
                self._rewrite()

    def _append(self, line: bytes) -> None:
        if self._fd < 0:
            raise InflightJournalError("journal not open")
        write_all(self._fd, line)
        self._size += len(line)

    def _rewrite(self) -> None:
        """The live calls' newest lines only, swapped in atomically (tmp, rename): a crash in
        the middle leaves the old log, never half of the new one. The new file is locked before
        it takes the name, and its descriptor becomes the one appended to."""
        data = b"".join(self._live.values())
        tmp = self.directory / ".journal.jsonl.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                     0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            write_all(fd, data)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(self._fd)
        self._fd, self._size = fd, len(data)
