"""The host's webhook sender: takes the outbox's lock, then delivers every endpoint's events.

Per endpoint, each call's oldest pending event is its head: only heads are sent, at most
``concurrency`` at a time, so a call's events arrive in order while one call's failing event
holds up no other call. A failed attempt (no connection, a timeout, any status but 2xx; a
redirect is not followed) is retried with backoff from ``retry_first_s`` doubling to
``retry_max_s``; an event older than ``max_age_h`` is moved to ``dead/``. Each attempt is
signed afresh: the timestamp is the attempt's, as receivers reject old ones (the spec's five
minutes of tolerance).

Services that emit run a sender each; the one holding the lock delivers, the others try again
every few seconds, so the host keeps delivering while any of them runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

import aiohttp

from callrec import __version__
from callrec.aio import first_of
from callrec.backoff import Backoff
from callrec.lifecycle import Tasks
from callrec.webhooks import WebhookError
from callrec.webhooks.metrics import WebhookMetrics
from callrec.webhooks.outbox import Outbox, Pending
from callrec.webhooks.settings import Endpoint, WebhookSettings
from callrec.webhooks.signing import Ed25519Key, HmacKey, headers

log = logging.getLogger(__name__)


@dataclass
class _Retry:
    backoff: Backoff
    due: float = 0.0  # time.monotonic()
    attempts: int = 0


@dataclass
class _Target:
    name: str
    endpoint: Endpoint
    keys: list[HmacKey | Ed25519Key]
    limit: asyncio.Semaphore
    cache: dict[str, Pending] = field(default_factory=dict)
    retries: dict[str, _Retry] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)


def _keys(endpoint: Endpoint) -> list[HmacKey | Ed25519Key]:
    keys: list[HmacKey | Ed25519Key] = []
    if endpoint.secret.get_secret_value():
        keys.append(HmacKey.parse(endpoint.secret.get_secret_value()))
    if endpoint.signing_key.get_secret_value():
        keys.append(Ed25519Key.parse(endpoint.signing_key.get_secret_value()))
    return keys


class Sender:
    def __init__(self, settings: WebhookSettings, outbox: Outbox,
                 metrics: WebhookMetrics) -> None:
        self.settings, self.outbox, self.metrics = settings, outbox, metrics
        self.targets = [_Target(name, ep, _keys(ep), asyncio.Semaphore(settings.concurrency))
                        for name, ep in settings.endpoints.items()]
        for target in self.targets:
            metrics.endpoint(target.name)
        self.wake = asyncio.Event()
        self.tasks = Tasks()
        self._lock: int | None = None
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Until cancelled (the service's shutdown): a delivery cut short stays pending."""
        while True:
            if self._lock is None:
                self._lock = await asyncio.to_thread(self.outbox.try_lock)
                if self._lock is None:
                    await asyncio.sleep(self.settings.poll_s * 5)
                    continue
                self.metrics.sender.set(1)
                log.info("webhooks: delivering this host's events (%s) to %s",
                         self.outbox.root, ", ".join(t.name for t in self.targets))
            delay = await self._round()
            self.wake.clear()
            await first_of(self.wake.wait(), timeout=delay)

    async def close(self) -> None:
        await self.tasks.cancel()
        if self._session is not None:
            await self._session.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
            self.metrics.sender.set(0)

    async def _round(self) -> float:
        """Start every due head; the seconds until the next one is due (at most poll_s)."""
        soonest = self.settings.poll_s
        for target in self.targets:
            heads = await asyncio.to_thread(self._heads, target)
            now = time.monotonic()
            for head in heads:
                retry = target.retries.get(head.path.name)
                if retry is not None and retry.due > now:
                    soonest = min(soonest, retry.due - now)
                elif head.path.name not in target.in_flight:
                    target.in_flight.add(head.path.name)
                    self.tasks.spawn(self._deliver(target, head))
        return max(0.01, soonest)

    def _heads(self, target: _Target) -> list[Pending]:
        """The oldest pending event of each call (in a thread: it reads the outbox). Expired
        and unreadable files are buried on the way."""
        names = self.outbox.pending(target.name)
        now_ns, max_age = time.time_ns(), self.settings.max_age_h * 3600
        heads: dict[str, Pending] = {}
        for name in names:
            pending = target.cache.get(name)
            if pending is None:
                try:
                    pending = target.cache[name] = self.outbox.load(target.name, name)
                except (WebhookError, OSError) as exc:
                    log.error("webhooks: %s; moved to dead/", exc)
                    self._bury(target, name)
                    continue
            if pending.event.call_id in heads or name in target.in_flight:
                heads.setdefault(pending.event.call_id, pending)
                continue
            if pending.age_s(now_ns) > max_age:
                log.error("[%s] webhook %s %s not taken by %s in %.0f h; moved to dead/",
                          pending.event.call_id, pending.event.type, pending.event.id,
                          target.name, self.settings.max_age_h)
                self._bury(target, name)
                self.metrics.deliveries.labels(target.name, "expired").inc()
                continue
            heads[pending.event.call_id] = pending
        for gone in set(target.cache) - set(names):
            del target.cache[gone]
        self.metrics.pending.labels(target.name).set(len(target.cache))
        oldest = min((p.emitted_ns for p in target.cache.values()), default=now_ns)
        self.metrics.oldest.labels(target.name).set((now_ns - oldest) / 1e9)
        return list(heads.values())

    def _bury(self, target: _Target, name: str) -> None:
        target.cache.pop(name, None)
        target.retries.pop(name, None)
        try:
            self.outbox.bury(self.outbox.root / target.name / name)
        except OSError as exc:
            log.error("webhooks: %s not moved to dead/: %s", name, exc)

    async def _deliver(self, target: _Target, head: Pending) -> None:
        event, name = head.event, head.path.name
        try:
            async with target.limit:
                problem = await self._post(target, head)
            if problem is None:
                await asyncio.to_thread(self.outbox.done, head.path)
                target.retries.pop(name, None)
                target.cache.pop(name, None)
                self.metrics.deliveries.labels(target.name, "delivered").inc()
                log.info("[%s] webhook %s %s delivered to %s", event.call_id, event.type,
                         event.id, target.name)
                self.wake.set()  # the call's next event is its head now
                return
            retry = target.retries.setdefault(name, _Retry(Backoff(
                self.settings.retry_first_s, self.settings.retry_max_s)))
            retry.attempts += 1
            delay = retry.backoff.next()
            retry.due = time.monotonic() + delay
            self.metrics.deliveries.labels(target.name, "failed").inc()
            log.warning("[%s] webhook %s %s to %s failed (%s), attempt %d; next in %.0f s",
                        event.call_id, event.type, event.id, target.name, problem,
                        retry.attempts, delay)
        finally:
            target.in_flight.discard(name)

    async def _post(self, target: _Target, head: Pending) -> str | None:
        """One attempt; None if the endpoint took it, else what went wrong (never the URL:
        it may carry a token)."""
        body = head.event.body
        sent = headers(head.event.id, int(time.time()), body, target.keys) | {
            "Content-Type": "application/json", "User-Agent": f"callrec/{__version__}"}
        try:
            async with self._client().post(target.endpoint.url, data=body, headers=sent,
                                           allow_redirects=False) as reply:
                return None if 200 <= reply.status < 300 else f"HTTP {reply.status}"
        except aiohttp.ClientConnectionError as exc:
            return f"no connection: {type(exc).__name__}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))
        return self._session
