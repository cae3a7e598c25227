"""How to reach a running bench (its ports and generated credentials): what every part of the
bench and the tests are given, apart from the bench that starts them (testbench/bench.py)."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testbench.asterisk import AsteriskCredentials, ari_auth
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


def wait_for_channel(endpoints: Endpoints, prefix: str, timeout: float = 20.0) -> str:
    """The name of the first channel whose name starts with ``prefix`` and is up (ARI)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{endpoints.ari_url}/ari/channels",
                                     headers=ari_auth(endpoints.asterisk))
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=5) as response:
            for channel in json.loads(response.read()):
                if channel["name"].startswith(prefix) and channel["state"] == "Up":
                    return str(channel["name"])
        time.sleep(0.2)
    raise AssertionError(f"no channel {prefix}* came up within {timeout} s")
