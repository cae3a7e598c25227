"""In-flight calls on disk, so a callrec restart (even kill -9) still ends each call with its one
manifest.

Once the flow has handed a call off (and whenever its agents change), its partial manifest is
written to ``<spool>/.inflight/<call_id>.json``. The final manifest replaces it. At startup the
service adopts every entry: if the channel still exists it follows it again; if it is gone it
finishes the call with what it knows (ari_app/closewatch.py proves whether the file was closed).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import ValidationError

from callrec.manifest import CallManifest

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, spool: Path) -> None:
        self.directory = spool / ".inflight"

    def save(self, manifest: CallManifest) -> None:
        """Atomic replace; no fsync: losing the newest journal update to a power cut costs
        detail (an agent), never the call (the hand-off entry was written earlier)."""
        self.directory.mkdir(exist_ok=True)
        tmp = self.directory / f".{manifest.call_id}.tmp"
        tmp.write_text(manifest.model_dump_json())
        os.replace(tmp, self.directory / f"{manifest.call_id}.json")

    def remove(self, call_id: str) -> None:
        (self.directory / f"{call_id}.json").unlink(missing_ok=True)

    def entries(self) -> list[CallManifest]:
        found = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                found.append(CallManifest.read(path))
            except (OSError, ValidationError) as exc:
                # Never delete what we cannot read: set it aside for a human.
                log.error("in-flight entry %s unreadable (%s): moved to .bad", path.name, exc)
                path.rename(path.with_suffix(".bad"))
        return found
