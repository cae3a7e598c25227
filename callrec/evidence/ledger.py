"""The ledger in the bucket: hosts' public keys and their chains' signed checkpoints.

    <prefix>keys/<host>/<key_id>.pem                          public keys, under Object Lock
    <prefix>chains/<chain>/<yyyy>/<mm>/<dd>/<HHMMSS.ffffff>-<seq>.json   checkpoints

A checkpoint names the chain's last entry it vouches for (sequence number and the SHA-256 of
that manifest version), lists every entry since the previous checkpoint (seq, call id, SHA-256)
and names the previous checkpoint's own SHA-256: checkpoints chain too. It is signed like a
manifest (``signature`` metadata) and kept under ``evidence.checkpoint_mode`` (COMPLIANCE by
default): whoever can bypass GOVERNANCE retention and removes or replaces a call still cannot
remove the checkpoint that lists it (``callrec archive verify``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from callrec.durable import write_atomic
from callrec.evidence.chain import Chain, Sealed
from callrec.evidence.keys import HostKey, locked
from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import CallManifest
from callrec.s3.settings import Lock
from callrec.s3.store import Store
from callrec.signing import SealError, encode_sig, sha256_hex

log = logging.getLogger(__name__)
CHECKPOINT_KIND = "callrec-checkpoint"


@dataclass(frozen=True)
class EvidenceLayout:
    prefix: str

    @property
    def keys(self) -> str:
        return self.prefix + "keys/"

    @property
    def chains(self) -> str:
        return self.prefix + "chains/"

    def key_object(self, signer: str) -> str:
        """``host/key_id`` -> the key's object."""
        return f"{self.keys}{signer}.pem"

    def chain_day(self, chain: str, day: date) -> str:
        """Where the chain's checkpoints of ``day`` (a date or a datetime) begin."""
        return f"{self.chains}{chain}/{day:%Y/%m/%d}/"

    def checkpoint(self, chain: str, at: datetime, seq: int) -> str:
        return f"{self.chain_day(chain, at)}{at:%H%M%S.%f}-{seq:012d}.json"


class Ledger:
    """One writer's chain, as seen from the bucket: it publishes the host's public keys, seals
    versions written straight to S3 (the archive's outcome changes) and writes checkpoints."""

    def __init__(self, store: Store, settings: EvidenceSettings, chain: str) -> None:
        self.store, self.settings = store, settings
        self.layout = EvidenceLayout(settings.prefix)
        self.key = HostKey(settings)
        self.chain = Chain(settings.dir, chain)
        self.state = settings.dir / "chains" / f"{chain}.checkpoint"

    def lock(self) -> Lock:
        mode = self.settings.checkpoint_mode
        until = datetime.now(UTC) + timedelta(days=self.settings.checkpoint_days)
        return Lock(mode, until if mode else None, False)

    def publish_keys(self) -> int:
        """Every key of this host not yet in the bucket; returns how many were put."""
        put = 0
        for key_id, pem in self.key.public_keys().items():
            name = self.layout.key_object(f"{self.key.host}/{key_id}")
            if self.store.head(name) is None:
                self.store.put_bytes(name, pem, sha256_hex(pem), "", {}, self.lock(),
                                     "application/x-pem-file")
                log.info("evidence: public key %s/%s published", self.key.host, key_id)
                put += 1
        return put

    def rotate_key(self) -> tuple[str, str]:
        """Make a new key this host's current one and publish it (every key's public half stays
        in the bucket under Object Lock, so old manifests still verify, and the published object
        is the lasting record of the rotation); returns the old and the new key id. Running
        services sign with it from their next manifest on (HostKey follows ``current``)."""
        old = self.key.key_id
        new = self.key.rotate()
        self.publish_keys()
        log.warning("evidence: %s rotated its signing key %s -> %s", self.key.host, old, new)
        return old, new

    def seal_and_put(self, m: CallManifest, key: str, tags: str, metadata: dict[str, str],
                     lock: Lock, ticking: bool = False) -> Sealed:
        """``m`` sealed in this chain and written as the object ``key`` (a new version), then
        a checkpoint at once (such writes are rare and nothing ships them later). ``ticking``:
        the caller publishes the keys and checkpoints on its own ticks (the uploader, which
        writes one such version per transcoded call: uploader/evidence.py)."""
        def persist(data: bytes, signature: bytes) -> None:
            meta = {**metadata, "sha256": sha256_hex(data), "signature": encode_sig(signature)}
            self.store.put_bytes(key, data, sha256_hex(data), tags, meta, lock,
                                 "application/json")

        # The key first: an archive server with no uploader beside it (which publishes keys
        # on its ticks) would otherwise leave versions nobody can verify. A HEAD per key.
        if not ticking:
            self.publish_keys()
        sealed = self.chain.seal(self.key, m, persist)
        if not ticking:
            self.checkpoint()
        return sealed

    def checkpoint(self, upto: int | None = None) -> str:
        """A signed checkpoint of the chain up to entry ``upto`` (default: its tip), written
        even when nothing is new (it shows the writer was alive). Returns its object key."""
        with locked(self.chain.lock):
            previous = self.previous()
            done = int(previous["seq"]) if previous else 0
            entries = self.chain.entries(done, upto)
            last = entries[-1] if entries else None
            at = datetime.now(UTC)
            body: dict[str, Any] = {
                "kind": CHECKPOINT_KIND, "version": 1, "chain": self.chain.name,
                "key": self.key.signer, "at": at.isoformat(),
                # seq is also the count: a chain's entries are numbered from 1, no gap
                "seq": last.seq if last else done, "count": last.seq if last else done,
                "sha256": last.sha256 if last else (previous or {}).get("entry_sha256", ""),
                "previous": previous and {"seq": previous["seq"],
                                          "sha256": previous["sha256"]},
                "entries": [[e.seq, e.call_id, e.sha256] for e in entries]}
            data = json.dumps(body, indent=1).encode()
            name = self.layout.checkpoint(self.chain.name, at, body["seq"])
            meta = {"signature": encode_sig(self.key.sign(data)), "sha256": sha256_hex(data)}
            self.store.put_bytes(name, data, sha256_hex(data), "", meta, self.lock(),
                                 "application/json")
            state = {"seq": body["seq"], "sha256": sha256_hex(data), "key": name,
                     "entry_sha256": body["sha256"]}
            try:
                write_atomic(self.state.parent, self.state.name, json.dumps(state).encode())
            except OSError as exc:
                raise SealError(f"checkpoint state {self.state}: {exc}") from exc
        return name

    def previous(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SealError(f"checkpoint state {self.state} unreadable: {exc}") from exc


def host_chains(host: str) -> tuple[str, str]:
    """A host's two chains: its calls (``<host>``) and the versions it writes straight to the
    bucket (outcome changes by the archive and ``callrec outcome set``, and the uploader's
    versions naming a transcoded recording: ``<host>.archive``)."""
    return host, f"{host}.archive"


def archive_ledger(store: Store, settings: EvidenceSettings) -> Ledger | None:
    """This host's archive chain (``host_chains``); None when evidence is off."""
    return Ledger(store, settings, host_chains(settings.host)[1]) if settings.enabled else None
