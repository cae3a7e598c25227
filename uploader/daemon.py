"""``callrec upload``: the long-running uploader (startup -> run -> shutdown).

Manifests land in the spool by rename (ari_app writes them atomically): an inotify watch puts each
one on the work queue at once, a fixed pool of workers ships them, and a periodic sweep queues
anything the watch missed (a restart, an overflow, a failure to retry). After failures the sweep
backs off exponentially with jitter while the backlog waits on disk; it resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from callrec.aio import first_of
from callrec.backoff import Backoff
from callrec.inotify import IN_CLOSE_WRITE, IN_MOVED_TO, DirWatch
from callrec.lifecycle import Stop, Tasks
from uploader.evidence import Checkpointer
from uploader.service import Summary, Uploader

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, uploader: Uploader) -> None:
        self.uploader = uploader
        self.settings = uploader.settings.upload
        self.wake = asyncio.Event()
        self.queue: asyncio.Queue[Path] = asyncio.Queue()
        self.queued: set[str] = set()  # manifests queued or being shipped
        self.failed = 0  # failures since the last sweep
        self.tasks = Tasks()
        self.watch = DirWatch(self.settings.spool, IN_MOVED_TO | IN_CLOSE_WRITE, self._on_name,
                              self.wake.set)
        self.metrics_runner: Any = None
        evidence = uploader.settings.evidence
        self.checkpoints = Checkpointer(uploader.store, evidence, self.settings.spool,
                                        uploader.metrics) if evidence.enabled else None

    async def startup(self) -> None:
        self.watch.start()
        if self.settings.metrics_port:
            self.metrics_runner = await self.uploader.metrics.serve(self.settings.metrics_host,
                                                                    self.settings.metrics_port)
        journal = self.uploader.journal
        left = await asyncio.to_thread(self.uploader.journal_safely, journal.interrupted)
        if left:
            log.warning("%d call(s) were mid-upload when the last run stopped; shipping again",
                        len(left))
        await asyncio.to_thread(self.uploader.journal_safely, journal.prune)
        log.info("uploader: spool %s, %d worker(s)", self.settings.spool,
                 self.settings.concurrency)
        for _ in range(self.settings.concurrency):
            self.tasks.spawn(self._worker())
        if self.checkpoints is not None:
            self.tasks.spawn(self._checkpoints(self.checkpoints))
        self.uploader.webhooks.start(self.tasks)  # the host's sender, or waiting for its lock

    async def run(self, stop: Stop) -> None:
        interval = self.settings.sweep_interval_s
        pauses = Backoff(first=min(interval * 2, self.settings.max_backoff_s),
                         cap=max(interval, self.settings.max_backoff_s))
        while not stop.requested.is_set():
            self._sweep()
            await asyncio.to_thread(self.uploader.backlog)
            delay = interval
            if self.failed:
                delay = pauses.next()
                log.warning("%d attempt(s) failed; next sweep in %.1f s", self.failed, delay)
            else:
                pauses.reset()
            self.failed = 0
            self.wake.clear()
            await first_of(stop.requested.wait(), self.wake.wait(), timeout=delay)

    async def shutdown(self, stop: Stop) -> None:
        """Finish the calls being shipped (each ends verified or untouched) within the grace
        period, then stop."""
        self.watch.close()
        while not self.queue.empty():
            self.queued.discard(self.queue.get_nowait().name)
        if not await stop.within_grace(self.queue.join()):
            log.warning("grace period over: calls still being shipped are left for the next "
                        "run (nothing is deleted before it is verified in S3)")
        await self.tasks.cancel()
        await self.uploader.webhooks.close()  # undelivered events stay in the outbox
        if self.checkpoints is not None:  # what was shipped until the stop is vouched for
            await asyncio.to_thread(self.checkpoints.tick)
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()
        self.uploader.close()

    async def _checkpoints(self, checkpoints: Checkpointer) -> None:
        interval = self.uploader.settings.evidence.checkpoint_interval_s
        while True:
            await asyncio.to_thread(checkpoints.tick)
            await asyncio.sleep(interval)

    def _on_name(self, name: str) -> None:
        if name.endswith(".json") and not name.startswith("."):
            self._enqueue(self.settings.spool / name)

    def _sweep(self) -> None:
        for path in self.uploader.pending():
            self._enqueue(path)

    def _enqueue(self, path: Path) -> None:
        if path.name not in self.queued:
            self.queued.add(path.name)
            self.queue.put_nowait(path)

    async def _worker(self) -> None:
        while True:
            path = await self.queue.get()
            try:
                summary = Summary()
                await self.uploader.ship_one(path, summary)
                self.failed += len(summary.failed)
            finally:
                self.queued.discard(path.name)
                self.queue.task_done()
