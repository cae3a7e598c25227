"""Evidence settings (``[evidence]``, ``CALLREC_EVIDENCE__*``): shared by the call flow, the
uploader and the archive of a host, which must agree on ``dir`` and ``host``."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field

from callrec.sections import Section
from callrec.signing import NAME_RE


def _hostname() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "host"


class EvidenceSettings(Section):
    enabled: bool = True
    dir: Path = Path("/var/lib/callrec/evidence")  # keys (0600) and chain logs: keep it backed up
    host: str = Field(default_factory=_hostname, pattern=NAME_RE)  # this host in the bucket
    prefix: str = Field("evidence/", pattern=r"^[A-Za-z0-9._/-]{1,64}/$")  # keys, checkpoints
    checkpoint_interval_s: float = Field(300.0, ge=1.0)
    # The checkpoints' own Object Lock: COMPLIANCE, so not even an account that may bypass
    # GOVERNANCE can remove the proof of what the archive held.
    checkpoint_mode: Literal["COMPLIANCE", "GOVERNANCE", ""] = "COMPLIANCE"
    checkpoint_days: int = Field(3650, ge=1)
