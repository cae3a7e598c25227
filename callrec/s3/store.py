"""The S3 seam: put, verify, tag, lock. botocore errors become :class:`StoreError` here, in
``translated`` and nowhere else (httpcore's ``map_exceptions``).

A PUT with Object Lock parameters needs a checksum header: every upload carries the whole file's
SHA-256 (single PUT) or per-part CRC32 checksums (multipart, whose object checksum is then a
checksum of checksums, so the whole-file SHA-256 also goes into the metadata and is what we verify).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from callrec.s3 import S3LayerError
from callrec.s3.multipart import put_multipart
from callrec.s3.settings import Lock, S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectLockRetentionTypeDef

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(S3LayerError):
    """S3 refused or could not be reached; ``permanent`` errors need a human (credentials,
    missing bucket), the others are retried."""

    def __init__(self, message: str, code: str = "", permanent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


PERMANENT = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "NoSuchBucket",
             "InvalidBucketName", "InvalidRequest", "InvalidArgument"}
MISSING = {"404", "NoSuchKey", "NotFound"}
NO_LOCK_CONFIG = {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """The one seam: an error of botocore inside becomes a StoreError saying what failed (the
    S3 error code, never a credential)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        raise StoreError(f"S3 {what}: {code}", code, permanent=code in PERMANENT) from exc
    except BotoCoreError as exc:
        raise StoreError(f"S3 {what}: {exc.__class__.__name__}") from exc


class Store:
    def __init__(self, settings: S3Settings, multipart_threshold_mb: int = 64,
                 connections: int = 10) -> None:
        self.settings = settings
        self.client: S3Client = boto3.client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key.get_secret_value(),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 2, "mode": "standard"},
                          connect_timeout=3, read_timeout=30,
                          max_pool_connections=max(10, connections),
                          # S3-compatible stores may refuse boto3's default CRC checksums.
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"),
        )
        self.multipart_threshold = multipart_threshold_mb << 20
        self.part_size = 8 << 20
        self.part_concurrency = 8  # parts in flight: 64 MiB of memory at most

    def close(self) -> None:
        self.client.close()

    def _extra(self, tags: str, metadata: dict[str, str], lock: Lock,
               content_type: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"Metadata": metadata, "ContentType": content_type}
        if tags:
            extra["Tagging"] = tags
        if lock.mode and lock.until:
            extra["ObjectLockMode"] = lock.mode
            extra["ObjectLockRetainUntilDate"] = lock.until
        if lock.legal_hold:
            extra["ObjectLockLegalHoldStatus"] = "ON"
        if self.settings.sse:
            extra["ServerSideEncryption"] = self.settings.sse
        if self.settings.storage_class:
            extra["StorageClass"] = self.settings.storage_class
        return extra

    def is_large(self, size: int) -> bool:
        return size >= self.multipart_threshold

    def put_file(self, key: str, path: Path, sha256_hex: str, tags: str,
                 metadata: dict[str, str], lock: Lock, content_type: str) -> bool:
        """Upload; True if the store itself vouched for the whole-file SHA-256.

        A single PUT carries x-amz-checksum-sha256: S3 refuses the object unless the bytes
        match (BadDigest) and echoes the checksum, so a successful reply that echoes ours is
        verification. A multipart object's checksum is one of part checksums: the caller must
        verify with a HEAD (size + metadata SHA-256)."""
        if not self.is_large(path.stat().st_size):
            with path.open("rb") as body:
                return self.put_bytes(key, body, sha256_hex, tags, metadata, lock, content_type)
        extra = self._extra(tags, metadata, lock, content_type)
        self.abort_stale_uploads(key)
        with translated(f"put {key}"):
            put_multipart(self.client, self.settings.bucket, key, path, sha256_hex, extra,
                          self.part_size, self.part_concurrency)
        return False

    def put_bytes(self, key: str, body: bytes | BinaryIO, sha256_hex: str, tags: str,
                  metadata: dict[str, str], lock: Lock, content_type: str) -> bool:
        """One PUT with x-amz-checksum-sha256; True if the store echoed our checksum."""
        checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        with translated(f"put {key}"):
            reply = self.client.put_object(
                Bucket=self.settings.bucket, Key=key, Body=body, ChecksumSHA256=checksum,
                **self._extra(tags, metadata, lock, content_type))
        return reply.get("ChecksumSHA256") == checksum

    def abort_stale_uploads(self, key: str) -> int:
        """Abort multipart uploads left for ``key`` by an earlier run (killed mid-upload):
        this uploader is the only writer of its calls' keys, so any open upload is stale."""
        with translated(f"abort stale uploads of {key}"):
            found = self.client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=key)
            uploads = [u for u in found.get("Uploads", []) if u.get("Key") == key]
            for upload in uploads:
                self.client.abort_multipart_upload(Bucket=self.settings.bucket, Key=key,
                                                   UploadId=upload["UploadId"])
        if uploads:
            log.warning("aborted %d stale multipart upload(s) of %s", len(uploads), key)
        return len(uploads)

    def _unless_missing(self, what: str, call: Callable[[], T]) -> T | None:
        """``call()``, or None if the object does not exist; other errors translated."""
        try:
            with translated(what):
                return call()
        except StoreError as exc:
            if exc.code in MISSING:
                return None
            raise

    def head(self, key: str) -> dict[str, Any] | None:
        return self._unless_missing(f"head {key}", lambda: dict(self.client.head_object(
            Bucket=self.settings.bucket, Key=key, ChecksumMode="ENABLED")))

    def verified(self, key: str, size: int, sha256_hex: str) -> bool:
        """The object exists with our size and whole-file SHA-256 (in its metadata)."""
        head = self.head(key)
        if head is None:
            return False
        meta = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        return bool(head.get("ContentLength") == size and meta.get("sha256") == sha256_hex)

    def get_bytes(self, key: str) -> bytes | None:
        """The object's body, or None if there is no such object."""
        found = self.get_with_etag(key)
        return found[0] if found else None

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object's body and ETag, or None if there is no such object."""
        def get() -> tuple[bytes, str]:
            reply = self.client.get_object(Bucket=self.settings.bucket, Key=key)
            return reply["Body"].read(), reply.get("ETag", "").strip('"')

        return self._unless_missing(f"get {key}", get)

    def download(self, key: str, out: IO[bytes],
                 progress: Callable[[int], None] = lambda n: None,
                 version_id: str | None = None) -> str:
        """Stream the object (or one version of it) into ``out``; returns the SHA-256 of what
        was written."""
        digest = hashlib.sha256()
        with translated(f"get {key}"):
            if version_id and version_id != "null":
                reply = self.client.get_object(Bucket=self.settings.bucket, Key=key,
                                               VersionId=version_id)
            else:
                reply = self.client.get_object(Bucket=self.settings.bucket, Key=key)
            body = reply["Body"]
            for chunk in body.iter_chunks(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                progress(len(chunk))
        return digest.hexdigest()

    def list_keys(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, str]]:
        """(key, ETag) of the objects under ``prefix`` after ``start_after``, in key order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.bucket, Prefix=prefix, StartAfter=start_after)
        with translated(f"list {prefix}"):
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"], obj.get("ETag", "").strip('"')

    def set_legal_hold(self, key: str, on: bool) -> None:
        with translated(f"legal hold of {key}"):
            self.client.put_object_legal_hold(Bucket=self.settings.bucket, Key=key,
                                              LegalHold={"Status": "ON" if on else "OFF"})

    def legal_hold(self, key: str) -> bool:
        try:
            with translated(f"legal hold of {key}"):
                reply = self.client.get_object_legal_hold(Bucket=self.settings.bucket, Key=key)
        except StoreError as exc:
            if exc.code in NO_LOCK_CONFIG:
                return False
            raise
        return reply.get("LegalHold", {}).get("Status") == "ON"

    def put_tags(self, key: str, tags: dict[str, str]) -> None:
        """Replace the object's tags (they stay mutable under Object Lock)."""
        with translated(f"tag {key}"):
            self.client.put_object_tagging(
                Bucket=self.settings.bucket, Key=key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})

    def extend_retention(self, key: str, lock: Lock) -> None:
        """Retain the object at least until ``lock.until``: retention may only grow."""
        if lock.mode not in ("COMPLIANCE", "GOVERNANCE") or lock.until is None:
            return
        until = (self.head(key) or {}).get("ObjectLockRetainUntilDate")
        if until is not None and lock.until <= until:
            return
        retention: ObjectLockRetentionTypeDef = {
            "Mode": "COMPLIANCE" if lock.mode == "COMPLIANCE" else "GOVERNANCE",
            "RetainUntilDate": lock.until}
        with translated(f"retention of {key}"):
            self.client.put_object_retention(Bucket=self.settings.bucket, Key=key,
                                             Retention=retention)

    def presign(self, key: str, expires_s: int, download_as: str | None = None) -> str:
        """A GET URL valid for ``expires_s`` seconds (signed locally: no request to S3). It
        carries the access key id and a signature, never the secret."""
        # no-store: S3 answers with it, so no browser or proxy cache keeps a recording.
        params: dict[str, str] = {"Bucket": self.settings.bucket, "Key": key,
                                  "ResponseCacheControl": "no-store"}
        if download_as:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
        return self.client.generate_presigned_url("get_object", Params=params,
                                                  ExpiresIn=expires_s)

    def check_bucket(self) -> None:
        try:
            with translated("head bucket"):
                self.client.head_bucket(Bucket=self.settings.bucket)
        except StoreError as exc:
            if exc.code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(f"S3 bucket {self.settings.bucket!r} does not exist",
                                 "NoSuchBucket", permanent=True) from exc
            if exc.code in ("403", "Forbidden"):
                raise StoreError("S3 refused the credentials for bucket "
                                 f"{self.settings.bucket!r}", "AccessDenied",
                                 permanent=True) from exc
            raise
