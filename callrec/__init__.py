"""callrec: an honest call-recording notice, recording and S3 archive for Asterisk.

This package holds what the parts share (the command line; later the call manifest, the one
contract between ``ari_app``, ``uploader`` and the archive). Each part lives in its own package.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("callrec")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


class CallrecError(Exception):
    """Root of callrec's own errors; each package derives its root exception from it."""
