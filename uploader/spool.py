"""The spool as the uploader sees it: which calls wait, how much, and where a call's files go
once it is archived (removed, or moved to ``done/``) or set aside for a human (``quarantine/``).

A call's files share its id: ``<id>.json`` (the manifest, renamed into place last by the call
flow: its presence means the call is ready), ``.json.sig``, ``.wav``, a stereo call's ``.raw``
stream (ari_app/rawfile.py) and the uploader's own transcodes (uploader/formats.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from callrec.signing import SIG_SUFFIX
from uploader.formats import leftovers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backlog:
    calls: int
    bytes: int
    oldest_s: float  # age of the oldest waiting manifest


class Spool:
    def __init__(self, directory: Path, after_upload: str = "delete") -> None:
        self.directory = directory
        self.after_upload = after_upload

    def pending(self) -> list[Path]:
        """Final manifests waiting (hidden temp files and sub-directories such as .inflight/,
        done/ and quarantine/ are not)."""
        return sorted(p for p in self.directory.glob("*.json") if not p.name.startswith("."))

    def backlog(self) -> Backlog:
        count, size, oldest = 0, 0, time.time()
        for manifest in self.pending():
            try:
                st = manifest.stat()
                wav = manifest.with_suffix(".wav")
                size += st.st_size + (wav.stat().st_size if wav.exists() else 0)
            except OSError:
                continue  # shipped meanwhile
            count, oldest = count + 1, min(oldest, st.st_mtime)
        return Backlog(count, size, time.time() - oldest if count else 0.0)

    @staticmethod
    def files_of(manifest: Path) -> list[Path]:
        """Every file of the call the spool may hold, the manifest last but its signature."""
        wav = manifest.with_suffix(".wav")
        return [wav, manifest.with_suffix(".raw"), *leftovers(wav), manifest,
                manifest.with_name(manifest.name + SIG_SUFFIX)]

    def clean_up(self, manifest: Path) -> None:
        """The call is archived and verified: its files go (or move to ``done/``)."""
        files = self.files_of(manifest)
        if self.after_upload == "move":
            done = self.directory / "done"
            done.mkdir(exist_ok=True)
            for path in files:
                if path.exists():
                    shutil.move(str(path), done / path.name)
        else:
            for path in files:
                path.unlink(missing_ok=True)

    def quarantine(self, manifest: Path, reason: str) -> None:
        """Every file of the call into ``quarantine/``, with a reason file; never deleted."""
        target = self.directory / "quarantine"
        target.mkdir(exist_ok=True)
        for path in self.files_of(manifest):
            if path.exists():
                shutil.move(str(path), target / path.name)
        try:
            (target / f"{manifest.stem}.reason.json").write_text(json.dumps({"reason": reason}))
        except OSError as exc:  # e.g. a full disk: the files are moved (renamed) anyway
            log.error("[%s] quarantine reason file not written: %s", manifest.stem, exc)
