"""S3 object tags from manifest values, within S3's rules.

At most 10 tags; keys up to 128 and values up to 256 characters from letters, digits, white space
and ``_ . : / = + - @``. Caller IDs come from the network: anything else is replaced, and the raw
value stays in the manifest (and its metadata copy), never in a tag.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlencode

from callrec.manifest import CallManifest

_NOT_ALLOWED = re.compile(r"[^\w .:/=+\-@]", flags=re.ASCII)


def clean(value: str, limit: int = 256) -> str:
    text = unicodedata.normalize("NFKC", value)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")  # controls, bidi
    return _NOT_ALLOWED.sub("_", text)[:limit]


def tags_for(m: CallManifest) -> dict[str, str]:
    tags = {
        "caller": m.caller.number,
        "agent": m.agent(),
        "outcome": m.outcome,
        "did": m.did or "",
        "status": m.status.value,
    }
    if m.queue():  # the queue that answered (else the last entered): S3 lifecycle rules per queue
        tags["queue"] = m.queue()
    return {k: clean(v) for k, v in tags.items()}


def tagging_header(tags: dict[str, str]) -> str:
    """The x-amz-tagging header is URL-query encoded."""
    return urlencode(tags)
