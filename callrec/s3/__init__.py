"""The S3 layer the uploader and the archive share: settings, the store (the one place botocore
errors are translated), multipart uploads and the object layout (keys, tags, metadata).

It knows the call manifest (the contract, below it) and nothing of the services above it.
"""

from __future__ import annotations

from callrec import CallrecError


class S3LayerError(CallrecError):
    """Root of the S3 layer's errors."""
