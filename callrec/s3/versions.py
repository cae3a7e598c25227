"""Reading the bucket as evidence: every version of every object, with its metadata and its
Object Lock state. Errors are translated at the store's one seam (callrec/s3/store.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callrec.s3.store import MISSING, NO_LOCK_CONFIG, Store, StoreError, translated


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    version_id: str
    size: int
    last_modified: datetime
    latest: bool
    delete_marker: bool = False


def _pages(store: Store, operation: str, what: str, **kwargs: Any) -> Iterator[Any]:
    """The pages of a listing of the bucket (empty markers left out), errors translated."""
    args = {"Bucket": store.settings.bucket, **{k: v for k, v in kwargs.items() if v}}
    with translated(what):
        yield from store.client.get_paginator(operation).paginate(**args)  # type: ignore[call-overload]


def list_versions(store: Store, prefix: str, key_marker: str = "") -> Iterator[ObjectVersion]:
    """Every version and delete marker under ``prefix`` (after ``key_marker``), in key order
    (newest first within a key, as S3 lists them)."""
    for page in _pages(store, "list_object_versions", f"list versions {prefix}", Prefix=prefix,
                       KeyMarker=key_marker):
        for v in page.get("Versions", []):
            yield ObjectVersion(v["Key"], str(v.get("VersionId") or "null"),
                                int(v.get("Size", 0)), v["LastModified"], bool(v.get("IsLatest")))
        for d in page.get("DeleteMarkers", []):
            yield ObjectVersion(d["Key"], str(d.get("VersionId") or "null"), 0,
                                d["LastModified"], bool(d.get("IsLatest")), True)


def list_latest(store: Store, prefix: str, start_after: str = "") -> Iterator[ObjectVersion]:
    """The current version of every object under ``prefix`` (ListObjectsV2: on SeaweedFS ten
    times cheaper for the store than listing versions). Version ids are not listed: "null"."""
    for page in _pages(store, "list_objects_v2", f"list {prefix}", Prefix=prefix,
                       StartAfter=start_after):
        for o in page.get("Contents", []):
            yield ObjectVersion(o["Key"], "null", int(o.get("Size", 0)), o["LastModified"], True)


def list_prefixes(store: Store, prefix: str) -> list[str]:
    """The "directories" right below ``prefix``."""
    return [p["Prefix"] for page in _pages(store, "list_objects_v2", f"list {prefix}",
                                           Prefix=prefix, Delimiter="/")
            for p in page.get("CommonPrefixes", [])]


def get_version(store: Store, key: str, version_id: str | None = None,
                ) -> tuple[bytes, dict[str, str]] | None:
    """A version's body and metadata (lower-case keys); None if it does not exist."""
    kwargs: dict[str, Any] = {"Bucket": store.settings.bucket, "Key": key}
    if version_id and version_id != "null":
        kwargs["VersionId"] = version_id
    try:
        with translated(f"get {key}"):
            reply = store.client.get_object(**kwargs)
            body = reply["Body"].read()
    except StoreError as exc:
        if exc.code in MISSING or exc.code == "NoSuchVersion":
            return None
        raise
    return body, {k.lower(): v for k, v in reply.get("Metadata", {}).items()}


def lock_state(store: Store, key: str, version_id: str) -> dict[str, Any]:
    """A version's Object Lock: retention mode and date, legal hold (as S3 states them)."""
    head: dict[str, Any] = {"Bucket": store.settings.bucket, "Key": key}
    if version_id != "null":
        head["VersionId"] = version_id
    try:
        with translated(f"head {key}"):
            reply = store.client.head_object(**head)
    except StoreError as exc:
        if exc.code in MISSING or exc.code in NO_LOCK_CONFIG:
            return {}
        raise
    until = reply.get("ObjectLockRetainUntilDate")
    return {"retention_mode": reply.get("ObjectLockMode", ""),
            "retain_until": until.isoformat() if until else "",
            "legal_hold": reply.get("ObjectLockLegalHoldStatus", "OFF")}


def oldest_first(versions: list[ObjectVersion]) -> list[ObjectVersion]:
    """One key's versions, oldest first: S3 lists them newest first, and the one it calls
    latest is last whatever the clocks say. Not by LastModified: SeaweedFS keeps it to the
    second, and in its version listings a legal hold or a retention change moves it."""
    return sorted(reversed(versions), key=lambda v: v.latest)
