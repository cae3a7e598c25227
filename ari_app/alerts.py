"""Supervisor alerts: an agent warned an abusive caller or ended the call.

Each alert counts on ``callrec_agent_actions_total`` at once and, when a webhook is configured,
is POSTed as JSON in its own tracked task: retried with backoff, never holding up the call. The
body is signed with HMAC-SHA256 (Python's hmac, keyed by ``alerts.secret``) so the receiver can
tell it came from callrec: ``X-Callrec-Signature: sha256=<hex of HMAC(secret, body)>``; the body
carries its own timestamp and a unique id against replays.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import Counter

from ari_app.config import AlertSettings
from callrec.backoff import Backoff
from callrec.lifecycle import Tasks

log = logging.getLogger(__name__)


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Alerts:
    def __init__(self, settings: AlertSettings, tasks: Tasks, counter: Counter) -> None:
        self.settings, self.tasks, self.counter = settings, tasks, counter
        self._session: aiohttp.ClientSession | None = None

    def count(self, action: str) -> None:
        """An agent action that raises no alert (a refused key)."""
        self.counter.labels(action).inc()

    def alert(self, call_id: str, action: str, facts: dict[str, Any]) -> None:
        """Count it now; deliver it in the background."""
        self.count(action)
        if not self.settings.webhook_url:
            return
        body = json.dumps({"id": str(uuid.uuid4()), "at": datetime.now(UTC).isoformat(),
                           "call_id": call_id, "action": action, **facts},
                          ensure_ascii=False).encode()
        self.tasks.spawn(self._deliver(call_id, action, body))

    async def _deliver(self, call_id: str, action: str, body: bytes) -> None:
        url = self.settings.webhook_url
        headers = {"Content-Type": "application/json", "X-Callrec-Signature": signature(
            self.settings.secret.get_secret_value().encode(), body)}
        where = urlsplit(url).hostname  # never the URL: it may carry a token
        pauses = Backoff(first=1.0, cap=60.0)
        for attempt in range(1, self.settings.attempts + 1):
            try:
                async with self._client().post(url, data=body, headers=headers) as reply:
                    if 200 <= reply.status < 300:
                        log.info("[%s] alert %s delivered to %s", call_id, action, where)
                        return
                    problem = f"HTTP {reply.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            log.warning("[%s] alert %s to %s failed (%s), attempt %d of %d", call_id, action,
                        where, problem, attempt, self.settings.attempts)
            if attempt < self.settings.attempts:
                await asyncio.sleep(pauses.next())
        log.error("[%s] alert %s NOT delivered to %s", call_id, action, where)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
