"""Archive fixtures: calls archived by the real uploader into a fresh Object-Lock bucket of the
bench's SeaweedFS, and archive settings (catalog in tmp) pointing at it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from archive.auth import hash_password, token_digest
from archive.catalog import Catalog
from archive.config import ArchiveSettings, CatalogSettings, Token, User, WebSettings
from archive.service import Archive
from callrec.manifest import CallManifest
from callrec.s3.settings import OutcomeRule, RetentionSettings, S3Settings
from testbench.bench import Endpoints
from uploader.config import UploaderSettings, UploadSettings
from uploader.service import Uploader

PASSWORDS = {"viewer": "viewer-password-1", "supervisor": "supervisor-password-1",
             "admin": "admin-password-1"}
TOKENS = {"desk": ("supervisor", "desk-token-" + "x" * 30),
          "wall": ("viewer", "wall-token-" + "y" * 30)}


@pytest.fixture(scope="session")
def password_hashes() -> dict[str, str]:
    return {name: hash_password(pw) for name, pw in PASSWORDS.items()}


def archive_settings(endpoints: Endpoints, bucket: str, tmp: Path, hashes: dict[str, str],
                     host_id: str = "test", catalog: str = "catalog.sqlite3",
                     ) -> ArchiveSettings:
    spool = tmp / "spool"
    spool.mkdir(exist_ok=True)
    return ArchiveSettings(
        s3=S3Settings(endpoint=endpoints.s3_endpoint, access_key=endpoints.s3.access_key,
                      secret_key=endpoints.s3.secret_key, bucket=bucket),
        retention=RetentionSettings(days=1, outcomes={
            "harassment": OutcomeRule(legal_hold=True, retention_days=30)}),
        archive=CatalogSettings(catalog=tmp / catalog, host_id=host_id, spool=spool),
        web=WebSettings(
            port=0, cookie_secure=False, sync_interval_s=0, session_secret="s" * 32,
            users={name: User(role=name, password_hash=h)
                   for name, h in hashes.items()},
            tokens={name: Token(role=role, sha256=token_digest(tok))
                    for name, (role, tok) in TOKENS.items()}))


@pytest.fixture
def settings(endpoints: Endpoints, locked_bucket: str, tmp_path: Path,
             password_hashes: dict[str, str]) -> ArchiveSettings:
    return archive_settings(endpoints, locked_bucket, tmp_path, password_hashes)


Ship = Callable[..., Awaitable[list[str]]]


def uploader_settings(settings: ArchiveSettings) -> UploaderSettings:
    """The uploader of the archive's bucket, shipping from the archive's spool."""
    assert settings.archive.spool is not None
    return UploaderSettings(s3=settings.s3, retention=settings.retention,
                            numbering=settings.numbering,
                            upload=UploadSettings(spool=settings.archive.spool, metrics_port=0))


@pytest.fixture
def ship(settings: ArchiveSettings) -> Ship:
    """Archive everything in the test's spool with the real uploader (await it); with
    ``feed=True`` it tells the archive's catalog of each call, as ``callrec upload`` does when
    ``upload.catalog`` is set (callrec/cli.py)."""
    async def run(feed: bool = False) -> list[str]:
        catalog = Catalog(settings.archive.catalog, settings.numbering) if feed else None
        uploader = Uploader(uploader_settings(settings),
                            feed=catalog.add if catalog is not None else None)
        try:
            summary = await uploader.drain()
        finally:
            uploader.close()
            if catalog is not None:
                catalog.close()
        assert not summary.failed and not summary.quarantined, summary
        return summary.shipped

    return run


@pytest.fixture
def archive(settings: ArchiveSettings) -> Iterator[Archive]:
    archive = Archive(settings)
    yield archive
    archive.close()


def ids(rows: list[dict[str, object]]) -> set[object]:
    return {r["call_id"] for r in rows}


def call_ids(calls: list[CallManifest]) -> set[str]:
    return {m.call_id for m in calls}
