"""Ships finished recordings and their manifests from the local spool to S3-compatible storage."""

from __future__ import annotations

from callrec import CallrecError


class UploaderError(CallrecError):
    """Root exception of the uploader service."""
