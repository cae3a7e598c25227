"""What is signed and how a chain links: the pure half of callrec's evidence (the rest, with
keys, files and the bucket, is callrec/evidence/).

Every manifest version a host writes is **sealed**: it names its place in the host's chain
(``CallManifest.chain``: chain, sequence number, the SHA-256 of the previous entry's exact bytes,
the signing key) and is signed, over its exact bytes, by the host's Ed25519 key. The recording's
SHA-256 is in those bytes, so the signature covers the audio too. The signature travels beside
the bytes (``<call_id>.json.sig`` in the spool, the object's ``signature`` metadata in S3, a
``.sig`` file in an evidence bundle) as base64, so a third party checks it with ``openssl pkeyutl
-verify -rawin`` on the very file they hold. A chain's log has one :class:`Entry` per version.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from callrec import CallrecError
from callrec.manifest import ChainLink

NAME_RE = r"^[A-Za-z0-9._-]{1,48}$"
SIG_SUFFIX = ".sig"


class SealError(CallrecError):
    """A key cannot be read or made, or the chain's log cannot be read or written."""


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


def next_link(tip: Entry | None, chain: str, signer: str) -> ChainLink:
    """The place after ``tip`` in ``chain`` (the first, with no previous, if there is none)."""
    return ChainLink(chain=chain, seq=tip.seq + 1 if tip else 1,
                     prev=tip.sha256 if tip else "", key=signer)
