"""The call flow: a Stasis (ARI) application and a FastAGI front door that answer the call, start
MixMonitor over AMI, verify it records, and only then play the recording notice."""

from __future__ import annotations

from callrec import CallrecError


class AriAppError(CallrecError):
    """Root exception of the call-flow service."""
