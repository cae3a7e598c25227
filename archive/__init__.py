"""callrec archive: a catalog of archived calls synced from S3, and the CLI, web UI and JSON API
ops use to find, play, re-classify and hold recordings. Every access is audited.

The domain (``config``, ``catalog/``, ``flags``, ``marking``, ``sessions``, ``sync``,
``service``, ``evidence/``) knows nothing of its doors (``web/``, ``cli/``); every door reaches
the catalog and the bucket through ``service.Archive`` (the contracts in pyproject.toml)."""

from __future__ import annotations

from callrec import CallrecError


class ArchiveError(CallrecError):
    """Root of the archive's errors; S3 and catalog failures are translated into these."""
