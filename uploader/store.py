"""The S3 seam: put, verify, tag. botocore errors become :class:`StoreError` here.

A PUT with Object Lock parameters needs a checksum header: every upload carries the whole file's
SHA-256 (single PUT) or per-part SHA-256 checksums (multipart, whose object checksum is then a
checksum of checksums, so the whole-file SHA-256 also goes into the metadata and is what we verify).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from uploader import UploaderError
from uploader.config import S3Settings
from uploader.multipart import put_multipart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Lock:
    mode: str  # "" = none
    until: datetime | None
    legal_hold: bool


class Store:
    def __init__(self, settings: S3Settings, multipart_threshold_mb: int = 64) -> None:
        self.settings = settings
        self.client: S3Client = boto3.client(
            "s3", endpoint_url=settings.endpoint, region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key.get_secret_value(),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 2, "mode": "standard"},
                          connect_timeout=3, read_timeout=30,
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
        extra: dict[str, Any] = {"Tagging": tags, "Metadata": metadata,
                                 "ContentType": content_type}
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

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.settings.bucket, Key=key,
                                                ChecksumMode="ENABLED"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _translate(exc, f"head {key}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"head {key}") from exc

    def verified(self, key: str, size: int, sha256_hex: str) -> bool:
        """The object exists with our size and whole-file SHA-256 (in its metadata)."""
        head = self.head(key)
        if head is None:
            return False
        meta = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        return bool(head.get("ContentLength") == size and meta.get("sha256") == sha256_hex)

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
