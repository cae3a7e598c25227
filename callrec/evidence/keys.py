"""This host's signing keys: made on first use, rotated by ``callrec keys rotate``, followed by
every running service without a restart."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callrec.durable import write_atomic
from callrec.evidence.settings import EvidenceSettings
from callrec.signing import SealError, key_id_of, public_pem


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
