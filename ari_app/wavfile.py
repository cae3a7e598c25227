"""What callrec reads and mends in a recording's WAV file: its header, its size and hash.

Asterisk writes the header with both sizes 0 when it opens the file and fills them in only when it
closes it (``update_header`` from ``wav_close``, formats/format_wav.c), so a header says whether
its writer finished.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)


class Header(StrEnum):
    FINISHED = "finished"  # by its writer (or not a header this code knows)
    UNFINISHED = "unfinished"  # its writer died; callrec may not write the file
    REPAIRED = "repaired"  # its writer died; callrec finished it


def modified_at(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return datetime.now(UTC)


def has_wav_header(path: Path) -> bool:
    try:  # os-level: no buffered file object (its isatty and seek calls) for 12 bytes
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.read(fd, 12)
    except OSError:
        return False
    finally:
        os.close(fd)
    return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


_RIFF_SIZE, _DATA_SIZE, _HEADER = 4, 40, 44


def _unfinished(head: bytes) -> bool:
    """Asterisk writes the header with both sizes 0 when it opens the file and fills them in
    only when it closes it (``update_header`` from ``wav_close``, formats/format_wav.c). A
    finished header's RIFF size is at least 36, even with no audio: 0 means never finished (a
    writer that died, perhaps before its first flush left anything but the header)."""
    return len(head) >= _HEADER and head[:4] == b"RIFF" and head[8:12] == b"WAVE" \
        and head[36:40] == b"data" and struct.unpack_from("<I", head, _RIFF_SIZE)[0] == 0 \
        and struct.unpack_from("<I", head, _DATA_SIZE)[0] == 0


def repair_header(path: Path, size: int) -> bool:
    """Finish the unfinished WAV header of a recording whose writer died; False if callrec may
    not write the file. If Asterisk is killed or the host loses power, the sizes stay 0 and
    players see an empty recording although the audio is on disk. Call it only on a file
    proven closed (no writer left). Only these 8 bytes change, set as ``update_header`` would
    have set them, and the manifest says so (``header_repaired``): zeroing them again gives
    back the bytes Asterisk left."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:  # not ours to write (Asterisk's umask: docs/admin.md, Spool)
        log.warning("%s: unfinished WAV header not repaired: %s", path.name, exc)
        return False
    try:
        os.pwrite(fd, struct.pack("<I", min(size - 8, 0xFFFFFFFF)), _RIFF_SIZE)
        os.pwrite(fd, struct.pack("<I", min(size - _HEADER, 0xFFFFFFFF)), _DATA_SIZE)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def describe(path: Path, repair: bool = False) -> tuple[int, float, str, Header]:
    """(size, duration, SHA-256, header state) of a recording, in one read of the file;
    ``repair`` (an unfinished header) only when the file is proven closed. The file is opened
    read-only: opening it for writing is itself a close event, so only a repair does."""
    digest, state = hashlib.sha256(), Header.FINISHED
    with path.open("rb") as f:
        header, size = f.read(_HEADER), os.fstat(f.fileno()).st_size
        if repair and _unfinished(header):
            state = Header.REPAIRED if repair_header(path, size) else Header.UNFINISHED
            if state is Header.REPAIRED:
                # Hash the bytes now on disk, read past the reader's buffer (a seek reuses it).
                header = os.pread(f.fileno(), _HEADER, 0)
        digest.update(header)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    rate = struct.unpack_from("<I", header, 24)[0] if len(header) >= _HEADER else 8000
    block = struct.unpack_from("<H", header, 32)[0] if len(header) >= _HEADER else 2
    return (size, round((size - _HEADER) / ((rate or 8000) * (block or 2)), 3),
            digest.hexdigest(), state)
