"""Marked callers on this host: the bucket's marks (callrec/s3/marks.py), kept in memory.

Refreshed every ``marks.refresh_s`` in a thread (boto3 blocks): one LIST of ``marks/`` and a GET
per changed mark. A refresh that fails keeps the last marks and tries again with backoff; a call
is never held up by S3. What a marked caller's call gets is decided at entry (ari_app/flow.py).
"""

from __future__ import annotations

import asyncio
import logging

from ari_app.config import MarkSettings
from callrec.backoff import Backoff
from callrec.manifest import normalise_number
from callrec.numbering import NumberingPlan
from callrec.s3.marks import Mark, MarkStore
from callrec.s3.store import StoreError

log = logging.getLogger(__name__)


class MarkedCallers:
    def __init__(self, settings: MarkSettings, store: MarkStore | None,
                 numbering: NumberingPlan) -> None:
        self.settings, self.store, self.numbering = settings, store, numbering
        self.etags: dict[str, str] = {}
        self.marks: dict[str, Mark] = {}  # by number

    def find(self, caller_number: str) -> Mark | None:
        """The active mark of this caller, if any (any caller ID, however odd: a lookup)."""
        mark = self.marks.get(self.numbering.e164(normalise_number(caller_number)))
        return mark if mark is not None and mark.active else None

    def refresh(self) -> int:
        """Read what changed; the number of marks now active."""
        assert self.store is not None
        now, fresh = self.store.changed(self.etags)
        for mark in fresh:
            if mark is not None:
                self.marks[mark.number] = mark
        self.marks = {n: m for n, m in self.marks.items() if MarkStore.key(n) in now}
        self.etags = now
        return sum(m.active for m in self.marks.values())

    async def run(self) -> None:
        pauses = Backoff(first=self.settings.refresh_s, cap=max(300.0, self.settings.refresh_s))
        while True:
            try:
                active = await asyncio.to_thread(self.refresh)
                log.debug("marked callers: %d active", active)
                pauses.reset()
                delay = self.settings.refresh_s
            except (StoreError, OSError) as exc:
                delay = pauses.next()
                log.error("marked callers not refreshed (%s); %d known, next try in %.0f s",
                          exc, len(self.marks), delay)
            await asyncio.sleep(delay)
