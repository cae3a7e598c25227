"""callrec archive: a catalog of archived calls synced from S3, and the CLI, web UI and JSON API
ops use to find, play, re-classify and hold recordings. Every access is audited."""

from __future__ import annotations

from callrec import CallrecError


class ArchiveError(CallrecError):
    """Root of the archive's errors; S3 and catalog failures are translated into these."""
