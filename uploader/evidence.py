"""The uploader's part of the ledger: it publishes this host's public keys and writes the calls
chain's checkpoints (callrec/evidence/ledger.py) every ``evidence.checkpoint_interval_s`` and at
shutdown, and the archive chain's when it sealed versions there (transcodes: uploader/formats.py).

A checkpoint only vouches for entries already shipped: it stops before the first entry whose
manifest is still in the spool, so ``callrec archive verify`` never counts a call waiting for
S3 as missing. A quarantined call has left the spool without reaching the bucket: the next
checkpoint lists it, and verify reports it missing, as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from callrec import CallrecError
from callrec.evidence.ledger import Ledger, host_chains
from callrec.evidence.settings import EvidenceSettings
from callrec.s3.store import Store
from uploader.metrics import Metrics

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, store: Store, settings: EvidenceSettings, spool: Path,
                 metrics: Metrics | None = None) -> None:
        self.ledger = Ledger(store, settings, settings.host)
        # The versions this uploader seals naming a transcode (uploader/formats.py).
        self.versions = Ledger(store, settings, host_chains(settings.host)[1])
        self.spool = spool
        self.metrics = metrics or Metrics()

    def shipped_upto(self, after: int) -> int | None:
        """The last entry of an unbroken run of shipped ones after ``after`` (None: the tip)."""
        for entry in self.ledger.chain.entries(after):
            if (self.spool / f"{entry.call_id}.json").exists():
                return entry.seq - 1
        return None

    def tick(self) -> str | None:
        """Publish keys (until done) and write a checkpoint; blocking (run it in a thread).
        Failures are logged: the next tick tries again, nothing is lost meanwhile."""
        try:
            self.ledger.publish_keys()  # a HEAD per key: a rotated key is out within a tick
            previous = self.ledger.previous()
            upto = self.shipped_upto(int(previous["seq"]) if previous else 0)
            name = self.ledger.checkpoint(upto)
            self._versions_checkpoint()
        except (CallrecError, OSError) as exc:
            self.metrics.checkpoint_failures.inc()
            log.error("evidence: checkpoint not written: %s (retried at the next interval)",
                      exc)
            return None
        self.metrics.checkpoint.set_to_current_time()
        log.debug("evidence: checkpoint %s", name)
        return name

    def _versions_checkpoint(self) -> None:
        """The archive chain's, when it has entries no checkpoint covers yet (every entry there
        is in the bucket: it was put before it was logged)."""
        tip = self.versions.chain.tip()
        previous = self.versions.previous()
        if tip is not None and tip.seq > (int(previous["seq"]) if previous else 0):
            self.versions.checkpoint()
