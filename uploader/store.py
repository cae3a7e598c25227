"""The S3 seam: put, verify, tag. botocore errors become :class:`StoreError` here.

A PUT with Object Lock parameters needs a checksum header: every upload carries the whole file's
SHA-256 (single PUT) or per-part CRC32 checksums (multipart, whose object checksum is then a
checksum of checksums, so the whole-file SHA-256 also goes into the metadata and is what we verify).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from uploader import UploaderError
from uploader.config import Lock, S3Settings
from uploader.multipart import put_multipart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(UploaderError):
    """S3 refused or could not be reached; ``permanent`` errors need a human (credentials,
    missing bucket), the others are retried."""

    def __init__(self, message: str, code: str = "", permanent: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.permanent = permanent


PERMANENT = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "NoSuchBucket",
             "InvalidBucketName", "InvalidRequest", "InvalidArgument"}


def _translate(exc: Exception, what: str) -> StoreError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return StoreError(f"S3 {what}: {code}", code, permanent=code in PERMANENT)
    return StoreError(f"S3 {what}: {exc.__class__.__name__}")


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
        try:
            self.abort_stale_uploads(key)
            put_multipart(self.client, self.settings.bucket, key, path, sha256_hex, extra,
                          self.part_size, self.part_concurrency)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"put {key}") from exc
        return False

    def put_bytes(self, key: str, body: bytes | BinaryIO, sha256_hex: str, tags: str,
                  metadata: dict[str, str], lock: Lock, content_type: str) -> bool:
        """One PUT with x-amz-checksum-sha256; True if the store echoed our checksum."""
        checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        try:
            reply = self.client.put_object(
                Bucket=self.settings.bucket, Key=key, Body=body, ChecksumSHA256=checksum,
                **self._extra(tags, metadata, lock, content_type))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"put {key}") from exc
        return reply.get("ChecksumSHA256") == checksum

    def abort_stale_uploads(self, key: str) -> int:
        """Abort multipart uploads left for ``key`` by an earlier run (killed mid-upload):
        this uploader is the only writer of its calls' keys, so any open upload is stale."""
        try:
            found = self.client.list_multipart_uploads(Bucket=self.settings.bucket, Prefix=key)
            uploads = [u for u in found.get("Uploads", []) if u.get("Key") == key]
            for upload in uploads:
                self.client.abort_multipart_upload(Bucket=self.settings.bucket, Key=key,
                                                   UploadId=upload["UploadId"])
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"abort stale uploads of {key}") from exc
        if uploads:
            log.warning("aborted %d stale multipart upload(s) of %s", len(uploads), key)
        return len(uploads)

    def _unless_missing(self, what: str, call: Callable[[], T]) -> T | None:
        """``call()``, or None if the object does not exist; other errors translated."""
        try:
            return call()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _translate(exc, what) from exc
        except BotoCoreError as exc:
            raise _translate(exc, what) from exc

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

    def download(self, key: str, out: BinaryIO,
                 progress: Callable[[int], None] = lambda n: None) -> str:
        """Stream the object into ``out``; returns the SHA-256 of what was written."""
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.settings.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                progress(len(chunk))
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"get {key}") from exc
        return digest.hexdigest()

    def list_keys(self, prefix: str, start_after: str = "") -> Iterator[tuple[str, str]]:
        """(key, ETag) of the objects under ``prefix`` after ``start_after``, in key order."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.bucket, Prefix=prefix, StartAfter=start_after)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"], obj.get("ETag", "").strip('"')
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"list {prefix}") from exc

    def set_legal_hold(self, key: str, on: bool) -> None:
        try:
            self.client.put_object_legal_hold(Bucket=self.settings.bucket, Key=key,
                                              LegalHold={"Status": "ON" if on else "OFF"})
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"legal hold of {key}") from exc

    def legal_hold(self, key: str) -> bool:
        try:
            reply = self.client.get_object_legal_hold(Bucket=self.settings.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                    "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
                return False
            raise _translate(exc, f"legal hold of {key}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"legal hold of {key}") from exc
        return reply.get("LegalHold", {}).get("Status") == "ON"

    def presign(self, key: str, expires_s: int, download_as: str | None = None) -> str:
        """A GET URL valid for ``expires_s`` seconds (signed locally: no request to S3). It
        carries the access key id and a signature, never the secret."""
        params: dict[str, str] = {"Bucket": self.settings.bucket, "Key": key}
        if download_as:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
        return self.client.generate_presigned_url("get_object", Params=params,
                                                  ExpiresIn=expires_s)

    def check_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.settings.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreError(f"S3 bucket {self.settings.bucket!r} does not exist",
                                 "NoSuchBucket", permanent=True) from exc
            if code in ("403", "Forbidden"):
                raise StoreError("S3 refused the credentials for bucket "
                                 f"{self.settings.bucket!r}", "AccessDenied",
                                 permanent=True) from exc
            raise _translate(exc, "head bucket") from exc
        except BotoCoreError as exc:
            raise _translate(exc, "head bucket") from exc
