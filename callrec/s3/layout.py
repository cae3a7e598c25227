"""How calls are laid out in the bucket: one place for object keys, listing prefixes, tags and
the metadata of a call's objects.

A call's objects are ``<key_template>.json`` (the manifest) and its recording, if any:
``.wav``, or ``.flac``/``.opus`` when the uploader archived a transcode (then also the ``.wav``
if the original is kept: callrec/manifest/audio.py ``Recording.objects``),
filed by the call's UTC entry date, which its id begins with (callrec/ids.py): a key can be found
from the call id alone.
"""

from __future__ import annotations

from datetime import date

from callrec.ids import CALL_ID
from callrec.manifest import CallManifest
from callrec.s3 import S3LayerError
from callrec.s3.tags import tagging_header, tags_for


class NotACallId(S3LayerError):
    """A call id that callrec never made (from user input)."""


class Layout:
    def __init__(self, key_template: str) -> None:
        self.template = key_template
        # The listing prefix of every call's objects, and whether keys sort by date after it.
        self.prefix = key_template.split("{", 1)[0]
        self.dated = key_template[len(self.prefix):].startswith("{yyyy}")

    def _key(self, yyyy: str, mm: str, dd: str, call_id: str) -> str:
        return self.template.format(yyyy=yyyy, mm=mm, dd=dd, call_id=call_id)

    def base(self, m: CallManifest) -> str:
        """The object key of a call without the .wav/.json suffix."""
        at = m.entered_at
        return self._key(f"{at:%Y}", f"{at:%m}", f"{at:%d}", m.call_id)

    def base_of(self, call_id: str) -> str:
        """The same, from the call id alone (its first 8 characters are the entry date)."""
        match = CALL_ID.match(call_id)
        if match is None:
            raise NotACallId(f"{call_id!r} is not a callrec call id")
        yyyy, mm, dd = match.groups()
        return self._key(yyyy, mm, dd, call_id)

    def recording_keys(self, m: CallManifest) -> list[str]:
        """The keys of the call's recording objects, the one to play first."""
        if m.recording is None:
            return []
        base = self.base(m)
        return [f"{base}.{fmt.value}" for fmt, _, _ in m.recording.objects()]

    def manifest_key(self, call_id: str) -> str:
        return self.base_of(call_id) + ".json"

    def day_start(self, day: date) -> str:
        """The key every call of ``day`` (and later) sorts after, for a listing's StartAfter;
        "" if the layout is not filed by date first."""
        if not self.dated:
            return ""
        return self._key(f"{day:%Y}", f"{day:%m}", f"{day:%d}", "")

    @staticmethod
    def tagging(m: CallManifest) -> str:
        """The objects' tags (mutable, for search and lifecycle rules), as the header wants."""
        return tagging_header(tags_for(m))

    @staticmethod
    def metadata(m: CallManifest, sha256_hex: str) -> dict[str, str]:
        """Immutable facts (tags stay mutable under Object Lock); ASCII only."""
        notice = m.notice
        return {
            "call-id": m.call_id, "sha256": sha256_hex, "schema-version": str(m.schema_version),
            "status": m.status.value, "notice-completed": str(notice.completed).lower(),
            "notice-language": notice.language or "",
            "notice-started-at": notice.started_at.isoformat() if notice.started_at else "",
        }
