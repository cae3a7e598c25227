"""Change a call's outcome after wrap-up: ``callrec outcome set CALL_ID OUTCOME``.

Before the call is archived, the manifest in the spool is rewritten (atomically) and the uploader
ships the new one. After, the objects' ``outcome`` tags are updated, the per-outcome retention rule
is applied (legal hold, longer retention), and a **new version** of the manifest object is written
rather than a sidecar: the original version stays under Object Lock, so the archive keeps both what
callrec recorded at hang-up and every later change (also listed in ``outcome_changes``), and
readers need no second object to know the current outcome.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from callrec.manifest import CallManifest
from uploader import UploaderError
from uploader.config import UploaderSettings
from uploader.service import Uploader
from uploader.store import Store, StoreError
from uploader.tags import tagging_header, tags_for

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectLockRetentionTypeDef

_CALL_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})T\d{6}Z-[0-9a-f]{12}$")


class OutcomeError(UploaderError):
    """The call is unknown or the outcome is not valid."""


def set_outcome(settings: UploaderSettings, store: Store, call_id: str, outcome: str,
                by: str = "") -> tuple[str, CallManifest]:
    """Returns where the change was made ("spool" or "archive") and the changed manifest."""
    if not _CALL_ID.match(call_id):
        raise OutcomeError(f"{call_id!r} is not a callrec call id")
    now = datetime.now(UTC)
    spool = settings.upload.spool
    local = spool / f"{call_id}.json"
    if local.exists():
        updated = _changed(CallManifest.read(local), outcome, by, now)
        updated.write_atomic(spool)
        return "spool", updated
    return "archive", _update_archive(settings, store, call_id, outcome, by, now)


def _changed(m: CallManifest, outcome: str, by: str, now: datetime) -> CallManifest:
    try:
        return m.with_outcome(outcome, by, now)
    except ValidationError as exc:
        raise OutcomeError(f"outcome {outcome!r} rejected: {exc.errors()[0]['msg']}") from exc


def _update_archive(settings: UploaderSettings, store: Store, call_id: str, outcome: str,
                    by: str, now: datetime) -> CallManifest:
    bucket = store.settings.bucket
    try:
        current = archived_manifest(settings, store, call_id)
        updated = _changed(current, outcome, by, now)
        base = settings.upload.key_base(updated)
        tags = tags_for(updated)
        lock = settings.retention.lock_for(updated)
        raw = updated.to_json()
        digest = hashlib.sha256(raw).hexdigest()
        store.put_bytes(base + ".json", raw, digest, tagging_header(tags),
                        Uploader.metadata(updated, digest), lock, "application/json")
        if updated.recording is not None:
            key = base + ".wav"
            store.client.put_object_tagging(
                Bucket=bucket, Key=key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
            if lock.legal_hold:
                store.set_legal_hold(key, True)
            head = store.head(key) or {}
            until = head.get("ObjectLockRetainUntilDate")
            if lock.mode in ("COMPLIANCE", "GOVERNANCE") and lock.until and (
                    until is None or lock.until > until):
                retention: ObjectLockRetentionTypeDef = {
                    "Mode": "COMPLIANCE" if lock.mode == "COMPLIANCE" else "GOVERNANCE",
                    "RetainUntilDate": lock.until}
                store.client.put_object_retention(  # retention may only grow
                    Bucket=bucket, Key=key, Retention=retention)
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(f"S3 outcome update of {call_id}: {exc}") from exc
    return updated


def manifest_key(settings: UploaderSettings, call_id: str) -> str:
    """The manifest's object key, from the call id (which starts with the UTC date)."""
    match = _CALL_ID.match(call_id)
    if match is None:
        raise OutcomeError(f"{call_id!r} is not a callrec call id")
    yyyy, mm, dd = match.groups()
    return settings.upload.key_template.format(yyyy=yyyy, mm=mm, dd=dd,
                                               call_id=call_id) + ".json"


def archived_manifest(settings: UploaderSettings, store: Store, call_id: str) -> CallManifest:
    body = store.get_bytes(manifest_key(settings, call_id))
    if body is None:
        raise OutcomeError(f"call {call_id} is neither in the spool nor archived")
    return CallManifest.model_validate_json(body)
