"""Settings of the archive service: the sections it shares with the uploader (S3 and the object
layout, retention rules: the archive reads what the uploader wrote and applies the same rules on
outcome changes; the numbering plan) plus the catalog and the web UI. One pydantic-settings
object, env prefix ``CALLREC_``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator

from callrec.evidence.settings import EvidenceSettings
from callrec.numbering import NumberingPlan
from callrec.s3.marks import Treatment
from callrec.s3.settings import RetentionSettings, S3Settings
from callrec.sections import Section
from callrec.settings import CallrecSettings

Role = Literal["viewer", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "supervisor", "admin")


class CatalogSettings(Section):
    catalog: Path = Path("/var/lib/callrec/catalog.sqlite3")  # SQLite, when no database
    # A PostgreSQL server shared by several archive servers (docs/admin.md, "Two archive
    # servers"), e.g. "postgresql://callrec@db1/callrec"; its password in secrets.env
    # (CALLREC_ARCHIVE__DATABASE) or ~/.pgpass. "" = the SQLite file above.
    database: SecretStr = SecretStr("")
    pool_size: int = Field(8, ge=1, le=100)  # connections per archive process
    # Incremental sync re-lists this many days back (uploads can lag: an Asterisk host whose
    # uplink was down ships days late); `sync --full` lists everything.
    lookback_days: int = Field(3, ge=0)
    sync_concurrency: int = Field(16, ge=1, le=64)
    presign_s: int = Field(300, ge=1)  # `callrec archive url` default
    presign_max_s: int = Field(3600, ge=1)
    audit_prefix: str = "audit/"
    # Names this archive server in the audit objects it ships (several may share a bucket).
    host_id: str = Field("archive", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    # The uploader's spool, if it is on this host: an outcome changed before the call is
    # archived is changed there (the uploader then ships it). None: archived calls only.
    spool: Path | None = None


class User(Section):
    role: Role
    password_hash: SecretStr  # `callrec archive hash-password`


class Token(Section):
    role: Role
    sha256: SecretStr  # of the token; `callrec archive token NAME` makes one


class WebSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8480, ge=0, le=65535)
    users: dict[str, User] = Field(default_factory=dict)
    tokens: dict[str, Token] = Field(default_factory=dict)
    session_hours: float = Field(8.0, gt=0)  # a login lasts at most this long
    idle_minutes: float = Field(30.0, gt=0)  # and ends this long after its last request
    # Sends cookies over HTTPS only. Turn off only on loopback (the demo): put the UI behind TLS.
    cookie_secure: bool = True
    play_url_s: int = Field(120, ge=10)  # lifetime of the audio player's presigned URL
    sync_interval_s: float = Field(30.0, ge=0)  # 0: the web server does not sync
    # `callrec archive verify` on a schedule (0: never), its result on the metrics endpoint
    # (callrec_archive_verify_*; port 0: none) and on the admins' /admin/evidence page.
    verify_interval_s: float = Field(86400.0, ge=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9472, ge=0, le=65535)
    # Behind a reverse proxy: the address users type (https://archive.example.jp). Forms are
    # accepted only from this origin and requests only for its host. Empty: the request's own
    # scheme and host (loopback, no proxy).
    public_url: str = Field("", pattern=r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)?$")
    # Addresses of the reverse proxies whose X-Forwarded-For is believed (the client address
    # in the audit log); from any other address that header is ignored.
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    # Seconds a stop lets requests in flight finish: below the unit's TimeoutStopSec
    # (deploy/callrec-archive.service: 30). A second signal stops at once.
    shutdown_grace_s: float = Field(20.0, ge=0)

    @field_validator("users", "tokens")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
                raise ValueError(f"bad user or token name {name!r}")
        return value


class FlagSettings(Section):
    """Calls flagged for a supervisor's review (archive/flags.py)."""

    long_call_minutes: float = Field(60.0, gt=0)
    repeat_calls: int = Field(3, ge=2)
    repeat_hours: float = Field(24.0, gt=0)


class AutoMarkSettings(Section):
    """Callers the archive marks by itself (archive/marking.py)."""

    enabled: bool = True
    calls: int = Field(3, ge=1)  # calls ended as `outcome` ...
    days: float = Field(30.0, gt=0)  # ... within this many days
    outcome: str = "harassment"
    treatment: Treatment = Treatment.WARNING


class ReconcileSettings(Section):
    """`callrec reconcile` (archive/evidence/reconcile.py): Asterisk's CDRs against manifests."""

    cdr: Path = Path("/var/log/asterisk/cdr-csv/Master.csv")
    # Endpoint-name patterns of trunks: keep equal to callrec ari's bridges.trunks.
    trunks: list[str] = Field(default_factory=lambda: ["trunk*"])
    # Calls that ended less than this long ago are left for the next run (their manifest may
    # still be in the making: the recording's close, the upload).
    settle_s: float = Field(300.0, ge=0)


class ArchiveSettings(CallrecSettings):
    s3: S3Settings = S3Settings()
    retention: RetentionSettings = RetentionSettings()
    numbering: NumberingPlan = NumberingPlan()
    archive: CatalogSettings = CatalogSettings()
    web: WebSettings = WebSettings()
    flags: FlagSettings = FlagSettings()  # calls flagged for review (archive/flags.py)
    auto_marks: AutoMarkSettings = AutoMarkSettings()  # callers marked automatically
    # Outcome changes are sealed in this host's archive chain (callrec/evidence/ledger.py).
    evidence: EvidenceSettings = EvidenceSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
