"""Supervisor alerts: an agent warned an abusive caller or ended the call.

Each alert counts on ``callrec_agent_actions_total`` at once and, when webhook endpoints are
configured, becomes a ``call.flagged`` event in the webhooks' durable outbox (callrec/webhooks/):
signed per Standard Webhooks, retried until the receiver takes it, never holding up the call.
A payment pause whose recording could not be proven again only counts here: its call's
``recording.interrupted`` event follows with the manifest.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from callrec.backoff import Backoff
from callrec.lifecycle import Tasks
from callrec.manifest import CallManifest
from callrec.webhooks.events import call_ended, call_flagged
from callrec.webhooks.hub import Webhooks
from callrec.webhooks.outbox import Event

log = logging.getLogger(__name__)

FLAGS = {"warning": "agent_warning", "end": "ended_by_agent"}  # the archive's flag names


class Alerts:
    def __init__(self, webhooks: Webhooks, tasks: Tasks, counter: Counter) -> None:
        self.webhooks, self.tasks, self.counter = webhooks, tasks, counter

    def count(self, action: str) -> None:
        """An agent action that raises no alert (a refused key)."""
        self.counter.labels(action).inc()

    def alert(self, call_id: str, action: str, facts: dict[str, Any]) -> None:
        """Count it now; into the outbox in the background."""
        self.count(action)
        if action in FLAGS:
            event = call_flagged(call_id, FLAGS[action], datetime.now(UTC), facts)
            self.tasks.spawn(self._emit(call_id, event))

    def call_ended(self, m: CallManifest) -> None:
        """``call.unrecorded`` or ``recording.interrupted``, written just before the call's
        manifest in the same thread (ari_app/ending.py): the uploader's ``call.archived`` for
        the manifest comes after it. OSError is retried with the manifest's write."""
        event = call_ended(m)
        if event is not None:
            self.webhooks.emit(event)

    async def _emit(self, call_id: str, event: Event) -> None:
        pauses = Backoff(first=0.5, cap=30.0)
        while True:
            try:
                await self.webhooks.emit_soon(event)
                return
            except OSError as exc:  # a full disk: the same event (one id) once it has room
                delay = pauses.next()
                log.error("[%s] webhook %s not written to the outbox: %s; again in %.1f s",
                          call_id, event.type, exc, delay)
                await asyncio.sleep(delay)
