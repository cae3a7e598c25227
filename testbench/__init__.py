"""The callrec test bench: a real Asterisk 22 (Debian sid chroot), SeaweedFS and SIPp on loopback.

Used by the pytest fixtures, by ``make sandbox-up`` / ``make demo`` and by the benchmarks, so all
three exercise the same PBX configuration and the project's real ``dialplan/`` files.
"""

from __future__ import annotations


class BenchError(Exception):
    """Root exception of the test bench: something it needs could not be built or started."""
