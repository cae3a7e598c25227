"""The archive web server: the app put together (guards, pages, JSON API, evidence pages) and
its lifecycle (callrec/lifecycle.py: startup -> run -> shutdown), with the catalog sync and the
scheduled archive verify it runs beside the requests."""

from __future__ import annotations

import logging

from aiohttp import web

from archive import ArchiveError
from archive.config import ArchiveSettings
from archive.evidence.desk import EvidenceDesk, VerifyMetrics
from archive.service import Archive
from archive.web.api import Api
from archive.web.app import WebApp
from archive.web.evidence import EvidencePages, serve_metrics_app
from archive.web.middleware import Guards
from archive.web.pages import Pages
from callrec.aio import first_of
from callrec.backoff import Backoff
from callrec.lifecycle import Stop, Tasks

log = logging.getLogger(__name__)


def application(w: WebApp, evidence: EvidencePages | None = None) -> web.Application:
    """Every route of the web UI and API behind the guards (archive/web/middleware.py)."""
    app = web.Application(middlewares=Guards(w).all(), client_max_size=64 << 10)
    Pages(w).register(app)
    Api(w).register(app)
    (evidence or EvidencePages(w, EvidenceDesk(w.archive), VerifyMetrics())).register(app)
    return app


class WebServer:
    """The archive web UI's lifecycle (callrec/lifecycle.py): startup -> run -> shutdown."""

    def __init__(self, settings: ArchiveSettings, archive: Archive) -> None:
        self.settings = settings
        self.webapp = WebApp(settings, archive)
        self.verify_metrics = VerifyMetrics()
        self.evidence = EvidencePages(self.webapp, EvidenceDesk(archive), self.verify_metrics)
        self.runner = web.AppRunner(application(self.webapp, self.evidence), access_log=None)
        self.metrics_runner: web.AppRunner | None = None
        self.tasks = Tasks()

    async def startup(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.settings.web.host, self.settings.web.port)
        await site.start()
        port = self.runner.addresses[0][1] if self.runner.addresses else self.settings.web.port
        log.info("archive web UI on http://%s:%s/", self.settings.web.host, port)
        web_settings = self.settings.web
        if web_settings.metrics_port:
            self.metrics_runner = web.AppRunner(serve_metrics_app(self.verify_metrics),
                                                access_log=None)
            await self.metrics_runner.setup()
            await web.TCPSite(self.metrics_runner, web_settings.metrics_host,
                              web_settings.metrics_port).start()

    async def run(self, stop: Stop) -> None:
        if self.settings.web.sync_interval_s > 0:
            self.tasks.spawn(self._sync_loop(self.settings.web.sync_interval_s, stop))
        if self.settings.web.verify_interval_s > 0:
            self.tasks.spawn(self.evidence.schedule(self.settings.web.verify_interval_s, stop))
        await stop.requested.wait()

    async def shutdown(self, stop: Stop) -> None:
        log.info("archive web UI stopping")
        # Requests in flight get the grace period (aiohttp waits for its handlers).
        await stop.within_grace(self.runner.cleanup())
        await self.tasks.cancel()
        await self.evidence.close()
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()
        self.webapp.pool.shutdown(wait=True)
        self.webapp.archive.close()

    async def _sync_loop(self, interval: float, stop: Stop) -> None:
        pauses = Backoff(first=interval, cap=max(interval, 600.0))
        while not stop.requested.is_set():
            try:
                await self.webapp.run(self.webapp.archive.sync)  # ships the audit rows too
                pauses.reset()
                delay = interval
            except ArchiveError as exc:
                delay = pauses.next()
                log.warning("catalog sync failed: %s; next try in %.0f s", exc, delay)
            await first_of(stop.requested.wait(), timeout=delay)
