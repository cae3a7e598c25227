"""A chain's log on this host and sealed writes: a manifest version gets its place in the chain,
is signed, persisted, and only then logged (callrec/evidence/__init__.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from callrec.durable import write_all, write_atomic, write_atomic_group
from callrec.evidence.keys import HostKey, locked
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import CallManifest, ChainLink
from callrec.signing import SIG_SUFFIX, Entry, SealError, encode_sig, next_link, sha256_hex


@dataclass(frozen=True)
class Sealed:
    data: bytes
    signature: bytes
    link: ChainLink
    sha256: str


class Chain:
    """One writer's chain on this host (``host`` for calls, ``host.archive`` for the archive's
    new versions): its log, appended under ``flock``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.log = directory / "chains" / f"{name}.log"
        self.lock = directory / "chains" / f".{name}.lock"

    def seal(self, key: HostKey, m: CallManifest,
             persist: Callable[[bytes, bytes], None]) -> Sealed:
        """Give ``m`` the next place in the chain, sign it, ``persist(bytes, signature)`` and
        only then append the entry: a crash in between leaves a sealed manifest the log does
        not know yet, which ``recover`` appends (never an entry without its manifest). A
        ``persist`` that raises appends nothing, so a retry gets the same place."""
        try:
            with locked(self.lock):
                link = next_link(self.tip(), self.name, key.signer)
                data = m.model_copy(update={"chain": link}).to_json()
                signature = key.sign(data)
                persist(data, signature)
                digest = sha256_hex(data)
                self._append(Entry(link.seq, digest, link.prev, m.call_id, _now()))
        except OSError as exc:
            raise SealError(f"chain {self.name}: {exc}") from exc
        return Sealed(data, signature, link, digest)

    def tip(self) -> Entry | None:
        """The last entry (a torn last line, from a crash mid-append, is not one)."""
        try:
            with self.log.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 4096))
                lines = f.read().split(b"\n")
        except FileNotFoundError:
            return None
        complete = [line for line in lines[:-1] if line.strip()]
        return Entry.parse(complete[-1].decode()) if complete else None

    def entries(self, after: int = 0, upto: int | None = None) -> list[Entry]:
        """Entries with ``after < seq <= upto`` (all after ``after`` without ``upto``). Read
        backwards from the end, so a checkpoint costs what it covers, not the whole log."""
        try:
            with self.log.open("rb") as f:
                end = f.seek(0, os.SEEK_END)
                block, data = 1 << 16, b""
                start = end
                while start > 0:
                    start = max(0, start - block)
                    f.seek(start)
                    data = f.read(end - start)
                    # Far enough back once the first whole line is at or before ``after``.
                    if start and data.count(b"\n") > 1 and _seq_of(
                            data.split(b"\n", 2)[1]) <= after:
                        break
                    block *= 2
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if start:
            lines = lines[1:]  # the first may be cut
        found = []
        for line in lines[:-1]:  # the last is empty, or torn
            if line.strip():
                entry = Entry.parse(line.decode())
                if entry.seq > after and (upto is None or entry.seq <= upto):
                    found.append(entry)
        return found

    def recover(self, spool: Path) -> int:
        """Append the entries of sealed manifests in ``spool`` that the log lacks (a crash
        between a manifest's rename and its log line); returns how many."""
        with locked(self.lock):
            tip = self.tip()
            pending = []
            for path in spool.glob("*.json"):
                with contextlib.suppress(OSError, ValueError):
                    data = path.read_bytes()
                    link = CallManifest.model_validate_json(data).chain
                    if link and link.chain == self.name and link.seq > (tip.seq if tip else 0):
                        pending.append((link, path.stem, data))
            for link, call_id, data in sorted(pending, key=lambda p: p[0].seq):
                self._append(Entry(link.seq, sha256_hex(data), link.prev, call_id, _now()))
        return len(pending)

    def _append(self, entry: Entry) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.log, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.ftruncate(fd, self._last_newline(fd, size))  # drop a torn last line
            write_all(fd, entry.line())
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _last_newline(fd: int, size: int) -> int:
        tail = os.pread(fd, min(size, 4096), max(0, size - 4096))
        cut = tail.rfind(b"\n")
        return 0 if cut < 0 else max(0, size - 4096) + cut + 1


def _seq_of(line: bytes) -> int:
    head = line.split(b" ", 1)[0]
    return int(head) if head.isdigit() else 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SpoolWriter:
    """Writes a call's manifest into the spool: sealed (``<call_id>.json.sig`` first, then the
    manifest, both atomically) when evidence is on, plain otherwise. Blocking: run it in a
    thread."""

    def __init__(self, spool: Path, settings: EvidenceSettings) -> None:
        self.spool = spool
        self.key = HostKey(settings) if settings.enabled else None
        self.chain = Chain(settings.dir, settings.host) if settings.enabled else None

    def recover(self) -> int:
        return self.chain.recover(self.spool) if self.chain is not None else 0

    def write(self, m: CallManifest) -> Path:
        name = f"{m.call_id}.json"
        if self.chain is None or self.key is None:
            return write_atomic(self.spool, name, m.to_json())

        def persist(data: bytes, signature: bytes) -> None:
            # The .sig first: the uploader never finds a sealed manifest without its signature.
            # One directory fsync for both: four fsyncs per sealed call instead of five.
            write_atomic_group(self.spool, [(name + SIG_SUFFIX,
                                             encode_sig(signature).encode() + b"\n"),
                                            (name, data)])

        self.chain.seal(self.key, m, persist)
        return self.spool / name
