"""Evidence at the source: each host's Ed25519 key, and its ledger of manifest versions.

Every manifest version a host writes is **sealed**: it names its place in the host's chain
(``CallManifest.chain``: chain, sequence number, the SHA-256 of the previous entry's exact bytes,
the signing key) and is signed, over its exact bytes, by the host's key. The recording's SHA-256
is in those bytes, so the signature covers the audio too. The signature travels beside the
bytes (``<call_id>.json.sig`` in the spool, the object's ``signature`` metadata in S3, a ``.sig``
file in an evidence bundle), so a third party checks it with ``openssl pkeyutl -verify -rawin``
on the very file they hold.

The chain's local record is an append-only log (``<dir>/chains/<chain>.log``, one line per
entry), appended under an exclusive ``flock`` so that the call flow, the CLI and the archive on
one host never give two versions one number. Checkpoints of it go to the bucket under Object
Lock (callrec/s3/ledger.py), so a deleted, replaced or re-ordered version is detectable even by
someone who can bypass GOVERNANCE retention.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field

from callrec import CallrecError
from callrec.manifest import CallManifest, ChainLink, write_all, write_atomic, write_atomic_group
from callrec.sections import Section

NAME_RE = r"^[A-Za-z0-9._-]{1,48}$"
SIG_SUFFIX = ".sig"


class SealError(CallrecError):
    """A key cannot be read or made, or the chain's log cannot be read or written."""


def _hostname() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "host"


class EvidenceSettings(Section):
    """``CALLREC_EVIDENCE__*``: shared by the call flow, the uploader and the archive of a host
    (they must agree on ``dir`` and ``host``)."""

    enabled: bool = True
    dir: Path = Path("/var/lib/callrec/evidence")  # keys (0600) and chain logs: keep it backed up
    host: str = Field(default_factory=_hostname, pattern=NAME_RE)  # this host in the bucket
    prefix: str = Field("evidence/", pattern=r"^[A-Za-z0-9._/-]{1,64}/$")  # keys, checkpoints
    checkpoint_interval_s: float = Field(300.0, ge=1.0)
    # The checkpoints' own Object Lock: COMPLIANCE, so not even an account that may bypass
    # GOVERNANCE can remove the proof of what the archive held.
    checkpoint_mode: Literal["COMPLIANCE", "GOVERNANCE", ""] = "COMPLIANCE"
    checkpoint_days: int = Field(3650, ge=1)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise SealError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SealError("not an Ed25519 public key")
    return key


def signature_ok(public: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def encode_sig(signature: bytes) -> str:
    return base64.b64encode(signature).decode()


def decode_sig(text: str | bytes) -> bytes | None:
    """A signature from its base64 text; None if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class HostKey:
    """This host's signing keys: ``<dir>/keys/<key_id>.pem`` (PKCS#8, mode 0600), the one in
    use named by ``<dir>/keys/current``. Made on first use; ``rotate`` makes a new one and
    keeps the old (its public half stays in the bucket, so old manifests still verify)."""

    def __init__(self, settings: EvidenceSettings) -> None:
        self.host = settings.host
        self.dir = settings.dir / "keys"
        self._current_mtime = -1  # none read yet
        try:
            with locked(self.dir / ".lock"):
                if not (self.dir / "current").exists():
                    self._make()
        except OSError as exc:
            raise SealError(f"signing key in {self.dir}: {exc}") from exc
        self._follow_rotation()

    @property
    def signer(self) -> str:
        self._follow_rotation()
        return f"{self.host}/{self.key_id}"

    def sign(self, data: bytes) -> bytes:
        self._follow_rotation()
        return self._private.sign(data)

    def _follow_rotation(self) -> None:
        """The key ``current`` names, read again when that file changed: ``callrec keys
        rotate`` (another process) made a new key current, used from the next signature on
        without a restart."""
        try:
            mtime = (self.dir / "current").stat().st_mtime_ns
            if mtime != self._current_mtime:
                key_id = (self.dir / "current").read_text().strip()
                self._private, self.key_id = self._load(key_id), key_id
                self._current_mtime = mtime
        except OSError as exc:
            raise SealError(f"signing key in {self.dir}: {exc}") from exc

    def rotate(self) -> str:
        with locked(self.dir / ".lock"):
            key_id = self._make()
        self._current_mtime = -1  # read it again, whatever its mtime's granularity
        self._follow_rotation()
        return key_id

    def public_keys(self) -> dict[str, bytes]:
        """Every key this host has used: key id -> public PEM."""
        found = {}
        for path in sorted(self.dir.glob("*.pem")):
            found[path.stem] = public_pem(self._load(path.stem).public_key())
        return found

    def _make(self) -> str:
        key = Ed25519PrivateKey.generate()
        key_id = key_id_of(key.public_key())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.dir, f"{key_id}.pem", pem)
        os.chmod(self.dir / f"{key_id}.pem", 0o600)
        write_atomic(self.dir, "current", key_id.encode() + b"\n")
        return key_id

    def _load(self, key_id: str) -> Ed25519PrivateKey:
        try:
            key = serialization.load_pem_private_key((self.dir / f"{key_id}.pem").read_bytes(),
                                                     None)
        except (OSError, ValueError) as exc:
            raise SealError(f"signing key {key_id} in {self.dir} unreadable: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SealError(f"signing key {key_id} is not Ed25519")
        return key


@dataclass(frozen=True)
class Entry:
    """One line of a chain's log."""

    seq: int
    sha256: str  # of the version's exact bytes
    prev: str
    call_id: str
    at: str

    def line(self) -> bytes:
        return f"{self.seq} {self.sha256} {self.prev or '-'} {self.call_id} {self.at}\n".encode()

    @classmethod
    def parse(cls, line: str) -> Entry:
        seq, sha, prev, call_id, at = line.split()
        return cls(int(seq), sha, "" if prev == "-" else prev, call_id, at)


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
                tip = self.tip()
                link = ChainLink(chain=self.name, seq=tip.seq + 1 if tip else 1,
                                 prev=tip.sha256 if tip else "", key=key.signer)
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
