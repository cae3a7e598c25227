"""What ops can do with the archive, one place for the CLI, the web UI and the JSON API: search,
view, play, download, change the outcome, put or release a legal hold, read the audit log.

Every action checks the actor's role and is written to the audit log before its result is given
out (a failed action is audited too, with its error), so the log answers "who listened to this
call" for evidence handling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from archive import ArchiveError
from archive.catalog import (
    AuditFilter,
    AuditRow,
    CallRow,
    Catalog,
    CatalogError,
    DayCounts,
    Query,
    QueueCounts,
    described,
)
from archive.catalog.backends import open_catalog
from archive.config import ArchiveSettings, Role
from archive.flags import reviewed_by
from archive.marking import active_marks, all_marks, candidates, due_for_auto_mark, number_of
from archive.sessions import SessionStore
from archive.sync import Syncer, SyncReport, audit_key
from callrec.evidence.ledger import archive_ledger
from callrec.manifest import CallManifest
from callrec.s3.layout import Layout
from callrec.s3.marks import Mark, MarkStore, Treatment
from callrec.s3.outcome import Archived, OutcomeError, set_outcome
from callrec.s3.store import Store, StoreError
from callrec.signing import SealError

log = logging.getLogger(__name__)

Via = Literal["cli", "web", "api"]
# Each role may do what the roles before it may.
PERMISSIONS: dict[Role, set[str]] = {
    "viewer": {"search", "view", "play", "url", "download", "export"},
    "supervisor": {"outcome", "hold", "release", "review", "mark", "unmark", "evidence"},
    "admin": {"audit", "verify", "reconcile"},
}
RANK: dict[Role, int] = {"viewer": 0, "supervisor": 1, "admin": 2}


class Forbidden(ArchiveError):
    pass


class NotFound(ArchiveError):
    pass


class ActionFailed(ArchiveError):
    """S3 or the catalog failed; the message is safe to show (no credentials)."""


class Invalid(ArchiveError):
    """The request itself is wrong (an outcome outside ``[a-z0-9_]{1,32}``)."""


@dataclass(frozen=True)
class Actor:
    name: str
    role: Role
    via: Via
    address: str = ""

    def may(self, action: str) -> bool:
        return any(action in PERMISSIONS[r] for r in PERMISSIONS if RANK[r] <= RANK[self.role])


class Archive:
    def __init__(self, settings: ArchiveSettings, store: Store | None = None,
                 catalog: Catalog | None = None) -> None:
        self.settings = settings
        # The workers, plus the thread that lists beside them (sync, verify): a pool smaller
        # than that drops and reopens connections.
        self.store = store or Store(settings.s3,
                                    connections=settings.archive.sync_concurrency + 2)
        self.catalog: Catalog = catalog or open_catalog(settings.archive, settings.numbering,
                                                        settings.flags)
        self.layout = Layout(settings.s3.key_template)
        self.archived = Archived(self.store, self.layout, settings.retention,
                                 archive_ledger(self.store, settings.evidence))
        self.syncer = Syncer(settings, self.store, self.catalog)
        self.marks = MarkStore(self.store, settings.retention)
        # The web UI's logins, kept in the catalog (a logout or a removed user ends them).
        self.sessions = SessionStore(self.catalog, settings.web.session_hours,
                                     settings.web.idle_minutes)

    def catalogue(self, m: CallManifest, manifest_key: str, etag: str, legal_hold: bool) -> None:
        """A call the uploader on this host has just archived (``upload.catalog``): in the
        catalog at once, before the next sync lists it. The system's write, not an actor's."""
        self.catalog.add(m, manifest_key, etag, legal_hold)

    def close(self) -> None:
        self.catalog.close()
        self.store.close()

    def audit(self, actor: Actor, action: str, call_id: str | None,
               **detail: Any) -> None:
        self.catalog.audit(actor.name, actor.role, actor.via, action, call_id, detail,
                           actor.address)

    @contextmanager
    def failing(self, actor: Actor | None, action: str, call_id: str | None,
                 **detail: Any) -> Iterator[None]:
        """S3, an archived manifest, the host's evidence key or chain, or a local file failed:
        ActionFailed with a message safe to show, audited under the action tried when an
        actor asked for it."""
        try:
            yield
        except (OutcomeError, StoreError, SealError, OSError) as exc:
            if actor is not None:
                self.audit(actor, action, call_id, **detail, error=str(exc))
            raise ActionFailed(str(exc)) from exc

    def allow(self, actor: Actor, action: str, call_id: str | None) -> None:
        if not actor.may(action):
            self.audit(actor, action, call_id, refused="role")
            raise Forbidden(f"{actor.name} ({actor.role}) may not {action}")

    # -- reading ---------------------------------------------------------------------------------
    def dashboard(self, actor: Actor, days: int) -> tuple[list[DayCounts], list[QueueCounts]]:
        """Calls per day and per queue over ``days`` days: counts only, no call shown, so
        not an audit row of its own (every page view would be one)."""
        self.allow(actor, "search", None)
        return self.catalog.daily(days), self.catalog.per_queue(days)

    def search(self, actor: Actor, q: Query, action: str = "search") -> list[CallRow]:
        self.allow(actor, action, None)
        try:
            rows = self.catalog.search(q)
        except CatalogError as exc:
            self.audit(actor, action, None, query=q.describe(), error=str(exc))
            raise
        self.audit(actor, action, None, query=q.describe(), results=len(rows))
        return rows

    def row(self, call_id: str, actor: Actor | None = None, action: str = "") -> CallRow:
        """The call's catalog row; an unknown call is audited as ``action`` of ``actor``."""
        row = self.catalog.get(call_id)
        if row is None:
            if actor is not None:
                self.audit(actor, action, call_id, error="unknown call")
            raise NotFound(f"no call {call_id} in the catalog (try `callrec archive sync`)")
        return row

    def show(self, actor: Actor, call_id: str) -> tuple[CallRow, CallManifest]:
        """The catalog row and the manifest as archived now (read from S3, the truth)."""
        self.allow(actor, "view", call_id)
        row = self.row(call_id, actor, "view")
        with self.failing(actor, "view", call_id):
            manifest = self.archived.manifest(call_id)
        self.audit(actor, "view", call_id)
        return row, manifest

    @staticmethod
    def visible(actor: Actor, row: CallRow, manifest: CallManifest,
                ) -> tuple[dict[str, Any], CallManifest]:
        """What ``actor`` is shown of a call: admins everything; others not where the server
        keeps things (the recording's path on the PBX host, object keys, ETags), which they
        need for nothing and which tell an attacker the layout."""
        admin = actor.role == "admin"
        shown = {**row.fields(internal=admin), "has_recording": row.has_recording}
        rec = manifest.recording
        if not admin and rec is not None:
            manifest = manifest.model_copy(update={"recording": rec.model_copy(
                update={"path": rec.path.rsplit("/", 1)[-1]})})
        return shown, manifest

    def url(self, actor: Actor, call_id: str, expires_s: int | None = None,
            action: Literal["url", "play", "download"] = "url") -> str:
        """A presigned GET URL of the recording, capped at ``presign_max_s``."""
        self.allow(actor, action, call_id)
        row = self.row(call_id, actor, action)
        if not row.recording_key:
            raise NotFound(f"call {call_id} has no recording ({row.status})")
        cfg = self.settings.archive
        expires = max(1, min(expires_s or cfg.presign_s, cfg.presign_max_s))
        name = f"{call_id}.{row.recording_key.rsplit('.', 1)[-1]}" if action == "download" \
            else None
        url = self.store.presign(row.recording_key, expires, name)
        self.audit(actor, action, call_id, expires_s=expires)
        return url

    def get(self, actor: Actor, call_id: str, directory: Path,
            progress: Callable[[int], None] = lambda n: None) -> Path:
        """Download the recording (and manifest) into ``directory``; the SHA-256 must equal the
        manifest's or nothing is kept."""
        self.allow(actor, "download", call_id)
        row = self.row(call_id, actor, "download")
        if not row.recording_key:
            raise NotFound(f"call {call_id} has no recording ({row.status})")
        ext = row.recording_key.rsplit(".", 1)[-1]  # wav, or the archived transcode's
        target, tmp = directory / f"{call_id}.{ext}", directory / f".{call_id}.{ext}.part"
        try:
            with tmp.open("wb") as out:
                digest = self.store.download(row.recording_key, out, progress)
            manifest = self.archived.manifest(call_id)
            expected = manifest.recording.objects()[0][2] if manifest.recording else None
            if digest != expected:
                raise ActionFailed(f"SHA-256 of the download {digest} differs from the "
                                   f"manifest's {expected}; nothing kept")
            os.replace(tmp, target)
            (directory / f"{call_id}.json").write_bytes(manifest.to_json())
        except (OSError, StoreError, OutcomeError, ActionFailed) as exc:
            tmp.unlink(missing_ok=True)
            self.audit(actor, "download", call_id, error=str(exc))
            raise ActionFailed(str(exc)) from exc
        self.audit(actor, "download", call_id, sha256=digest, verified=True)
        return target

    def call_audit(self, call_id: str) -> list[AuditRow]:
        """Every audit row of one call, oldest first (for its evidence bundle)."""
        rows: list[AuditRow] = []
        before: int | None = None
        while True:
            page = self.catalog.audit_page(AuditFilter(call_id=call_id, before_id=before,
                                                       limit=500))
            rows += page
            if len(page) < 500:
                return rows[::-1]
            before = min(r.id for r in page)

    def audit_log(self, actor: Actor, limit: int = 200,
                  f: AuditFilter | None = None) -> list[AuditRow]:
        f = f or AuditFilter(limit=limit)
        self.allow(actor, "audit", None)
        self.audit(actor, "audit", None, limit=f.limit, filter=described(f))
        return self.catalog.audit_page(f)

    # -- changing --------------------------------------------------------------------------------
    def set_outcome(self, actor: Actor, call_id: str, outcome: str,
                    by: str = "") -> tuple[str, CallManifest]:
        """Change a call's outcome where it is now (the uploader's spool on this host, else the
        archived objects: retagged, re-locked, a new sealed version); returns where ("spool" or
        "archive") and the new manifest. ``by``: who the manifest names (default: the actor)."""
        self.allow(actor, "outcome", call_id)
        before = self.catalog.get(call_id)
        named = by or f"{actor.name} ({actor.via})"
        try:
            where, updated = set_outcome(self.settings.archive.spool, self.archived, call_id,
                                         outcome, named)
        except (OutcomeError, StoreError, SealError) as exc:  # SealError: the archive chain
            self.audit(actor, "outcome", call_id, outcome=outcome, by=named, error=str(exc))
            if isinstance(exc, OutcomeError):
                raise Invalid(str(exc)) from exc
            raise ActionFailed(str(exc)) from exc
        if where == "archive":
            hold = self.settings.retention.lock_for(updated).legal_hold or bool(
                before and before.legal_hold)
            # ETag unknown here: the next sync that lists the key reads it once more.
            self.catalog.add(updated, self.layout.manifest_key(call_id), "", hold)
        self.audit(actor, "outcome", call_id, outcome=outcome, where=where, by=named,
                   previous=updated.outcome_changes[-1].previous)
        self.ship_audit()
        return where, updated

    def enter(self, actor: Actor, m: CallManifest, action: str, **detail: Any) -> None:
        """A ledger entry only the archive can write (a call nobody but Asterisk saw:
        archive/evidence/turned_away.py): a new call's first version, sealed in this host's
        archive chain, catalogued and audited."""
        self.allow(actor, action, m.call_id)
        with self.failing(actor, action, m.call_id, **detail):
            self.archived.publish(m)
        self.catalog.add(m, self.layout.manifest_key(m.call_id), "",
                         self.settings.retention.lock_for(m).legal_hold)
        self.audit(actor, action, m.call_id, entered=m.status_reason, **detail)

    def hold(self, actor: Actor, call_id: str, on: bool) -> None:
        action = "hold" if on else "release"
        self.allow(actor, action, call_id)
        row = self.row(call_id, actor, action)
        with self.failing(actor, action, call_id):
            keys = [row.recording_key] if row.recording_key else []
            if row.recording_key and not row.recording_key.endswith(".wav"):
                # A transcode: its original may be archived too ([upload] keep_original).
                keys = self.layout.recording_keys(self.archived.manifest(call_id))
            for key in [*keys, row.manifest_key]:
                self.store.set_legal_hold(key, on)
        self.catalog.set_legal_hold(call_id, on)
        self.audit(actor, action, call_id)
        self.ship_audit()

    def review(self, actor: Actor, call_id: str) -> None:
        """A supervisor has looked at a flagged call: it leaves the flagged-calls page (on
        every archive server: the audit row travels with the change feed)."""
        self.allow(actor, "review", call_id)
        row = self.row(call_id, actor, "review")
        self.catalog.set_reviewed(call_id, reviewed_by(actor.name, datetime.now(UTC)))
        self.audit(actor, "review", call_id, flags=row.flags)
        self.ship_audit()

    def marked(self, actor: Actor) -> list[Mark]:
        self.allow(actor, "view", None)
        with self.failing(None, "marks", None):
            return active_marks(self.marks)

    def mark(self, actor: Actor, raw_number: str, treatment: str, note: str = "",
             active: bool = True) -> Mark:
        """Mark (or with ``active=False`` unmark) a caller number; every callrec host applies
        it at the caller's next call (within its marks.refresh_s)."""
        action = "mark" if active else "unmark"
        self.allow(actor, action, None)
        number = number_of(raw_number, self.settings.numbering)
        if not number or treatment not in {t.value for t in Treatment}:
            raise Invalid(f"cannot {action} {raw_number[:40]!r} with treatment "
                          f"{treatment[:20]!r}")
        mark = Mark(number=number, treatment=Treatment(treatment), active=active,
                    by=actor.name, at=datetime.now(UTC), note=note[:500])
        with self.failing(actor, action, None, number=number):
            self.marks.put(mark)
        self.audit(actor, action, None, number=number, treatment=treatment, note=mark.note)
        self.ship_audit()
        return mark

    def auto_mark(self) -> list[str]:
        """Mark the callers the auto-mark rule names (after each sync)."""
        rules = self.settings.auto_marks
        found = candidates(self.catalog, rules)
        if not found:  # the usual case: no S3 request at every sync
            return []
        with self.failing(None, "marks", None):
            known = all_marks(self.marks)
        due = due_for_auto_mark(self.catalog, rules, known, found)
        for number in due:
            mark = Mark(number=number, treatment=rules.treatment, reason="auto", by="auto",
                        at=datetime.now(UTC), note=f"{rules.calls}+ calls ended as "
                                                   f"{rules.outcome} in {rules.days:g} days")
            with self.failing(None, "marks", None):
                self.marks.put(mark)
            self.catalog.audit("auto", "admin", "cli", "mark", None,
                               {"number": number, "treatment": mark.treatment.value,
                                "reason": mark.note})
        return due

    # -- background ------------------------------------------------------------------------------
    def sync(self, full: bool = False, rebuild: bool = False,
             progress: Callable[[int], None] = lambda n: None) -> SyncReport:
        with self.failing(None, "sync", None):
            report = self.syncer.sync(full=full, rebuild=rebuild, progress=progress)
        self.auto_mark()
        self.ship_audit()
        return report

    def ship_audit(self) -> int:
        """Ship audit rows not yet in S3 as one JSON-lines object, under the bucket's Object
        Lock retention. Returns how many rows were shipped; failures are logged and retried on
        the next call (the rows stay in the catalog)."""
        shipped = int(self.catalog.get_state("audit_shipped", "0"))
        rows = self.catalog.audit_rows(after_id=shipped, limit=5000)
        if not rows:
            return 0
        now = datetime.now(UTC)
        key = audit_key(self.settings.archive.audit_prefix, now, self.settings.archive.host_id,
                        rows[0].id)
        body = "".join(json.dumps({**r.fields(), "detail": json.loads(r.detail),
                                   "host": self.settings.archive.host_id},
                                  ensure_ascii=False) + "\n" for r in rows).encode()
        lock = self.settings.retention.lock_from(now)
        try:
            self.store.put_bytes(key, body, hashlib.sha256(body).hexdigest(), "", {}, lock,
                                 "application/x-ndjson")
        except StoreError as exc:
            log.warning("audit rows %d-%d not shipped yet: %s", rows[0].id, rows[-1].id,
                        exc)
            return 0
        self.catalog.set_state("audit_shipped", str(rows[-1].id))
        return len(rows)
