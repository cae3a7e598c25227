"""Standard Webhooks signatures (https://www.standardwebhooks.com/, "Signature scheme").

What is signed is ``{webhook-id}.{webhook-timestamp}.{body}``: the id, the attempt's Unix time in
seconds and the exact body bytes. ``v1``: HMAC-SHA256 keyed by the base64 bytes of a ``whsec_``
secret; ``v1a``: Ed25519 by a ``whsk_`` private key (its 32-byte seed, base64), verified with the
``whpk_`` public key. Each signature is ``<version>,<base64>``; several are space-separated in
``webhook-signature``. The primitives are Python's hmac and the cryptography package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callrec.webhooks import WebhookError


class BadKey(WebhookError, ValueError):
    """A secret or signing key that is not what its prefix says (pydantic reports it with the
    setting's name, as a ValueError)."""


def _b64(prefix: str, text: str, sizes: range | tuple[int, ...], what: str) -> bytes:
    """The key bytes after ``prefix``; BadKey (never quoting the text) if they are not
    base64 or not of one of ``sizes``."""
    if not text.startswith(prefix):
        raise BadKey(f"must start with {prefix}")
    try:
        raw = base64.b64decode(text[len(prefix):], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadKey(f"is not base64 after {prefix}") from exc
    if len(raw) not in sizes:
        raise BadKey(f"{prefix} key must hold {what}")
    return raw


@dataclass(frozen=True)
class HmacKey:
    key: bytes

    @classmethod
    def parse(cls, text: str) -> HmacKey:
        return cls(_b64("whsec_", text, range(24, 65), "24 to 64 bytes (the spec's sizes)"))

    def sign(self, content: bytes) -> str:
        return "v1," + base64.b64encode(hmac.new(self.key, content, hashlib.sha256).digest()
                                        ).decode()


@dataclass(frozen=True)
class Ed25519Key:
    key: Ed25519PrivateKey

    @classmethod
    def parse(cls, text: str) -> Ed25519Key:
        # The 32-byte seed, or the seed followed by the public key (64 bytes).
        raw = _b64("whsk_", text, (32, 64), "an Ed25519 private key (32 bytes)")
        return cls(Ed25519PrivateKey.from_private_bytes(raw[:32]))

    def sign(self, content: bytes) -> str:
        return "v1a," + base64.b64encode(self.key.sign(content)).decode()

    def public(self) -> str:
        return "whpk_" + base64.b64encode(self.key.public_key().public_bytes_raw()).decode()


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def headers(msg_id: str, timestamp: int, body: bytes,
            keys: list[HmacKey | Ed25519Key]) -> dict[str, str]:
    content = signed_content(msg_id, timestamp, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(key.sign(content) for key in keys)}


def new_secret() -> str:
    """A fresh ``v1`` secret (32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_signing_key() -> tuple[str, str]:
    """A fresh Ed25519 pair: (``whsk_`` private key for callrec, ``whpk_`` public key for the
    receiver)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes_raw()
    return "whsk_" + base64.b64encode(seed).decode(), Ed25519Key(key).public()
