"""Sync the catalog from S3: the manifests the uploaders archived, and the changes (outcome, legal
hold) other archive servers made, read from the audit objects they shipped.

Incremental sync lists the manifest keys from ``lookback_days`` before the last sync on (keys
start with the call's date) and fetches only those whose ETag the catalog has not seen: a new
call, or a new version of a manifest (an outcome changed after wrap-up). ``--full`` lists every
key; ``--rebuild`` empties the catalog first and gives the same rows as the incremental history
(tested). Several archive servers and Asterisk hosts can share one bucket: each syncs on its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from pydantic import ValidationError

from archive.catalog import Catalog
from archive.catalog.rows import CallRow, row_for
from archive.config import ArchiveSettings
from archive.flags import reviewed_by
from callrec.manifest import CallManifest
from callrec.s3.layout import Layout
from callrec.s3.store import Store, StoreError

log = logging.getLogger(__name__)

BATCH = 1000
CHANGE_ACTIONS = {"outcome", "hold", "release", "review"}
# Audit objects of other servers may land a little out of key order (clocks, slow PUTs):
# the change feed re-lists this far back and skips the keys it already applied.
CHANGE_OVERLAP = timedelta(minutes=10)


@dataclass
class SyncReport:
    listed: int = 0
    fetched: int = 0
    changes: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return (f"listed {self.listed} manifests, fetched {self.fetched} new or changed, "
                f"applied {self.changes} changes, {len(self.errors)} errors "
                f"in {self.seconds:.1f} s")


class Syncer:
    def __init__(self, settings: ArchiveSettings, store: Store, catalog: Catalog) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.layout = Layout(settings.s3.key_template)

    def sync(self, full: bool = False, rebuild: bool = False,
             progress: Callable[[int], None] = lambda fetched: None) -> SyncReport:
        started, report = time.monotonic(), SyncReport()
        if rebuild:
            self.catalog.clear()
        since = self.catalog.get_state("synced_on")
        begun = datetime.now(UTC)
        start_after = "" if rebuild or full or not since else self._start_after(since)
        with ThreadPoolExecutor(self.settings.archive.sync_concurrency, "callrec-sync") as pool:
            keys = self._manifest_keys(start_after, report)
            while batch := list(islice(keys, BATCH)):
                self._sync_batch(batch, pool, report)
                progress(report.fetched)
            self._apply_changes(pool, report)
        self.catalog.set_state("synced_on", begun.date().isoformat())
        report.seconds = time.monotonic() - started
        log.info("catalog sync: %s", report.line())
        return report

    def _start_after(self, since: str) -> str:
        day = datetime.fromisoformat(since) - timedelta(days=self.settings.archive.lookback_days)
        return self.layout.day_start(day)

    def _manifest_keys(self, start_after: str, report: SyncReport) -> Iterator[tuple[str, str]]:
        for key, etag in self.store.list_keys(self.layout.prefix, start_after):
            if key.endswith(".json"):
                report.listed += 1
                yield key, etag

    def _sync_batch(self, batch: list[tuple[str, str]], pool: ThreadPoolExecutor,
                    report: SyncReport) -> None:
        known = self.catalog.etags([key for key, _ in batch])
        wanted = [(key, etag) for key, etag in batch if known.get(key) != etag]
        rows = [row for row in pool.map(lambda ke: self._row(ke[0], report), wanted) if row]
        report.fetched += self.catalog.upsert(rows)

    def _row(self, key: str, report: SyncReport) -> CallRow | None:
        try:
            found = self.store.get_with_etag(key)
            if found is None:
                return None  # deleted since the listing (an unlocked bucket)
            body, etag = found  # the version read, which may be newer than the one listed
            m = CallManifest.model_validate_json(body)
        except StoreError as exc:
            report.errors[key] = str(exc)
            log.warning("catalog sync: %s: %s", key, exc)
            return None
        except (ValidationError, ValueError) as exc:
            report.errors[key] = f"not a call manifest: {str(exc)[:200]}"
            log.warning("catalog sync: %s is not a call manifest (schema %s)", key,
                        "?" if isinstance(exc, ValueError) else "mismatch")
            return None
        current = self.catalog.get(m.call_id)
        hold = self.settings.retention.lock_for(m).legal_hold or bool(
            current and current.legal_hold)
        return row_for(m, key, etag, self.settings.numbering, hold, self.settings.flags)

    # -- the change feed -------------------------------------------------------------------------
    def _apply_changes(self, pool: ThreadPoolExecutor, report: SyncReport) -> None:
        seen = self.catalog.get_state("changes_seen")
        start_after = ""
        if seen:
            at = datetime.fromisoformat(seen) - CHANGE_OVERLAP
            start_after = audit_time_prefix(self.settings.archive.audit_prefix, at)
        newest = seen
        for key, _ in self.store.list_keys(self.settings.archive.audit_prefix, start_after):
            if self.catalog.change_applied(key):
                continue
            body = self.store.get_bytes(key) or b""
            refetch = set()
            for entry in _entries(body, key):
                refetch |= self._apply(entry, report)
            for call_id in refetch:
                self._refetch(call_id, report)
            self.catalog.mark_change_applied(key)
            newest = max(newest, _key_time(key) or "")
        if newest:
            self.catalog.set_state("changes_seen", newest)

    def _apply(self, entry: dict[str, Any], report: SyncReport) -> set[str]:
        """Apply one audit entry; returns calls whose manifest must be read again."""
        action, call_id = entry.get("action"), entry.get("call_id")
        if action not in CHANGE_ACTIONS or not isinstance(call_id, str):
            return set()
        report.changes += 1
        if action == "outcome":  # the manifest's new version is the truth: read it again
            return {call_id}
        if action == "review":
            self.catalog.set_reviewed(call_id, reviewed_by(
                str(entry.get("actor", "?")), _at(entry)))
            return set()
        self.catalog.set_legal_hold(call_id, action == "hold")
        return set()

    def _refetch(self, call_id: str, report: SyncReport) -> None:
        row = self.catalog.get(call_id)
        if row is None:
            return  # not catalogued yet: the manifest listing brings it
        fresh = self._row(row.manifest_key, report)
        if fresh is not None:
            self.catalog.upsert([fresh])


def audit_time_prefix(prefix: str, at: datetime) -> str:
    return f"{prefix}{at:%Y/%m/%d}/{at:%Y%m%dT%H%M%S.%f}"


def audit_key(prefix: str, at: datetime, host: str, first_id: int) -> str:
    """Audit objects sort by time: ``audit/2026/11/23/20261123T101500.123456Z-host-42.jsonl``."""
    return f"{audit_time_prefix(prefix, at)}Z-{host}-{first_id}.jsonl"


def _key_time(key: str) -> str | None:
    try:
        stamp = key.rsplit("/", 1)[1].split("Z-", 1)[0]
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC).isoformat()
    except (IndexError, ValueError):
        return None


def _entries(body: bytes, key: str) -> Iterator[dict[str, Any]]:
    for line in body.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            log.warning("change feed: a line of %s is not JSON; skipped", key)
            continue
        if isinstance(entry, dict):
            yield entry


def _at(entry: dict[str, Any]) -> datetime:
    """When an audit entry was made (now, if it does not say)."""
    try:
        at = datetime.fromisoformat(str(entry.get("at")))
    except ValueError:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)
