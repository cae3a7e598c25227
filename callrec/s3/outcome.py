"""Change a call's outcome after wrap-up (``callrec outcome set``, the archive's web UI and API).

Before the call is archived, an unsealed manifest in the spool is rewritten (atomically) and the
uploader ships the new one (a sealed one is refused until shipped: callrec/evidence/). After,
the objects' ``outcome`` tags are updated, the per-outcome retention rule is applied (legal hold,
longer retention), and a **new version** of the manifest object is written rather than a
sidecar, sealed in this host's archive chain: the original version stays under Object Lock, so
the archive keeps both what callrec recorded at hang-up and every later change (also listed in
``outcome_changes``), and readers need no second object to know the current outcome.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from callrec.ids import is_call_id
from callrec.manifest import CallManifest
from callrec.s3 import S3LayerError
from callrec.s3.layout import Layout
from callrec.s3.settings import Lock, RetentionSettings
from callrec.s3.store import Store
from callrec.s3.tags import tags_for


class VersionSealer(Protocol):
    """Seals a new manifest version in this host's archive chain and writes it as the object
    ``key`` (callrec/evidence/ledger.py ``Ledger``, passed in: evidence sits above this layer)."""

    def seal_and_put(self, m: CallManifest, key: str, tags: str, metadata: dict[str, str],
                     lock: Lock) -> object: ...


class OutcomeError(S3LayerError):
    """The call is unknown or the outcome is not valid."""


@dataclass
class Archived:
    """A bucket's archived calls: where they are and how long they are kept."""

    store: Store
    layout: Layout
    retention: RetentionSettings
    ledger: VersionSealer | None = None  # seals new versions (this host's archive chain); None: off

    def manifest(self, call_id: str) -> CallManifest:
        """The manifest as archived now (its newest version)."""
        if not is_call_id(call_id):
            raise OutcomeError(f"{call_id!r} is not a callrec call id")
        body = self.store.get_bytes(self.layout.manifest_key(call_id))
        if body is None:
            raise OutcomeError(f"call {call_id} is neither in the spool nor archived")
        try:
            return CallManifest.model_validate_json(body)
        except ValidationError as exc:
            raise OutcomeError(f"archived manifest of {call_id} is unreadable: "
                               f"{exc.errors()[0]['msg']}") from exc

    def publish(self, m: CallManifest) -> None:
        """A changed manifest as the call's new manifest version, its objects' tags, legal
        hold and retention following its outcome's rule."""
        base = self.layout.base(m)
        lock = self.retention.lock_for(m)
        if self.ledger is not None:
            self.ledger.seal_and_put(m, base + ".json", self.layout.tagging(m),
                                     self.layout.metadata(m, ""), lock)
        else:
            raw = m.model_copy(update={"chain": None}).to_json()  # unsealed: no stale link
            digest = hashlib.sha256(raw).hexdigest()
            self.store.put_bytes(base + ".json", raw, digest, self.layout.tagging(m),
                                 self.layout.metadata(m, digest), lock, "application/json")
        for key in self.layout.recording_keys(m):  # the archived format, and a kept original
            self.store.put_tags(key, tags_for(m))
            if lock.legal_hold:
                self.store.set_legal_hold(key, True)
            self.store.extend_retention(key, lock)


def set_outcome(spool: Path | None, archived: Archived, call_id: str, outcome: str,
                by: str = "") -> tuple[str, CallManifest]:
    """Returns where the change was made ("spool" or "archive") and the changed manifest."""
    if not is_call_id(call_id):
        raise OutcomeError(f"{call_id!r} is not a callrec call id")
    now = datetime.now(UTC)
    local = spool / f"{call_id}.json" if spool is not None else None
    if local is not None and local.exists():
        current = CallManifest.read(local)
        if current.chain is not None:
            # Sealed: that version is an entry of its host's chain and must reach the bucket
            # as it is; the change becomes the next version once it is archived.
            raise OutcomeError(f"call {call_id} is not archived yet (its sealed manifest is "
                               "still in the spool); set the outcome once it is shipped")
        updated = _changed(current, outcome, by, now)
        updated.write_atomic(local.parent)
        return "spool", updated
    updated = _changed(archived.manifest(call_id), outcome, by, now)
    archived.publish(updated)
    return "archive", updated


def _changed(m: CallManifest, outcome: str, by: str, now: datetime) -> CallManifest:
    try:
        return m.with_outcome(outcome, by, now)
    except ValidationError as exc:
        raise OutcomeError(f"outcome {outcome!r} rejected: {exc.errors()[0]['msg']}") from exc
