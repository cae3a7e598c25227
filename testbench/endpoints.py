"""How to reach a running bench (its ports and generated credentials): what every part of the
bench and the tests are given, apart from the bench that starts them (testbench/bench.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from testbench.asterisk import AsteriskCredentials
from testbench.s3 import S3Credentials


@dataclass(frozen=True)
class Endpoints:
    """How to reach a running bench; written to ``state/<instance>/bench.json`` (mode 0600)."""

    instance: str
    ari_url: str
    ami_host: str
    ami_port: int
    sip_port: int
    s3_endpoint: str
    spool: str
    asterisk: AsteriskCredentials
    s3: S3Credentials

    @classmethod
    def load(cls, path: Path) -> Endpoints:
        data = json.loads(path.read_text())
        data["asterisk"] = AsteriskCredentials(**data["asterisk"])
        data["s3"] = S3Credentials(**data["s3"])
        return cls(**data)
