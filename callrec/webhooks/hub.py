"""What a service holds of the webhooks: the outbox to emit into and, when endpoints are
configured, a sender for the host (callrec/webhooks/sender.py). Without endpoints nothing is
written and nothing runs."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry

from callrec.lifecycle import Tasks
from callrec.webhooks.metrics import WebhookMetrics
from callrec.webhooks.outbox import Event, Outbox
from callrec.webhooks.sender import Sender
from callrec.webhooks.settings import WebhookSettings

log = logging.getLogger(__name__)


class Webhooks:
    def __init__(self, settings: WebhookSettings, registry: CollectorRegistry) -> None:
        self.outbox = Outbox(settings)
        self.sender = Sender(settings, self.outbox, WebhookMetrics(registry)) \
            if settings.enabled else None

    def emit(self, event: Event, emitted_ns: int | None = None) -> None:
        """Durably in the outbox before returning (blocking: from a thread, or where a
        millisecond of fsync is fine). OSError (a full disk) is the caller's to retry."""
        if self.sender is not None:
            self.outbox.emit(event, emitted_ns)

    async def emit_soon(self, event: Event) -> None:
        """From the event loop: ordered by now, written in a thread."""
        if self.sender is not None:
            await asyncio.to_thread(self.outbox.emit, event, time.time_ns())

    def start(self, tasks: Tasks) -> None:
        if self.sender is not None:
            tasks.spawn(self.sender.run())

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.close()
