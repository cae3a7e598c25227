"""The evidence pages of the web UI: a supervisor exports a call's evidence bundle from its page
(``POST /calls/{id}/evidence``, a zip download); an admin sees the last archive verify and starts
one (``/admin/evidence``). The web server verifies on a schedule (``web.verify_interval_s``)
and serves the result as metrics (``web.metrics_port``)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from aiohttp import web

from archive import ArchiveError
from archive.evidence.desk import EvidenceDesk, VerifyMetrics
from archive.evidence.verify import KINDS, Report
from archive.service import Actor
from archive.web.app import ACTOR, CALL, WebApp
from callrec.aio import first_of
from callrec.lifecycle import Stop

log = logging.getLogger(__name__)
SYSTEM = Actor("callrec-schedule", "admin", "cli")


class EvidencePages:
    def __init__(self, w: WebApp, desk: EvidenceDesk, metrics: VerifyMetrics) -> None:
        self.w, self.desk, self.metrics = w, desk, metrics
        self.running: asyncio.Task[Report] | None = None

    def register(self, app: web.Application) -> None:
        app.router.add_post("/calls" + CALL + "/evidence", self.export)
        app.router.add_get("/admin/evidence", self.page)
        app.router.add_post("/admin/evidence/verify", self.verify_now)

    async def export(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        with tempfile.TemporaryDirectory(prefix="callrec-evidence-") as tmp:
            path = Path(tmp) / f"evidence-{call_id}.zip"
            await self.w.run(self.desk.export, request[ACTOR], [call_id], path)
            response = web.StreamResponse(headers={
                "Content-Type": "application/zip",
                "Content-Disposition": f'attachment; filename="{path.name}"'})
            response.content_length = path.stat().st_size
            await response.prepare(request)
            with path.open("rb") as f:
                while chunk := await self.w.run(f.read, 1 << 20):
                    await response.write(chunk)
            await response.write_eof()
        return response

    async def page(self, request: web.Request) -> web.Response:
        self.desk.archive.allow(request[ACTOR], "verify", None)
        report = self.desk.last
        return self.w.page(request, "evidence.html", report=report, kinds=KINDS,
                           rows=report.rows() if report else [],
                           problems=report.problems[:500] if report else [],
                           running=self.running is not None and not self.running.done())

    async def verify_now(self, request: web.Request) -> web.StreamResponse:
        actor = request[ACTOR]
        self.desk.archive.allow(actor, "verify", None)
        if self.running is None or self.running.done():
            self.running = asyncio.ensure_future(self.verify(actor))
        raise web.HTTPSeeOther("/admin/evidence")

    async def verify(self, actor: Actor) -> Report:
        report = await self.w.run(self.desk.verify, actor)
        self.metrics.publish(report)
        return report

    async def schedule(self, interval: float, stop: Stop) -> None:
        """Verify every ``interval`` seconds (the first soon after the start)."""
        delay = min(60.0, interval)
        while not stop.requested.is_set():
            await first_of(stop.requested.wait(), timeout=delay)
            if stop.requested.is_set():
                return
            try:
                await self.verify(SYSTEM)
            except ArchiveError as exc:
                log.error("scheduled archive verify failed: %s", exc)
            delay = interval

    async def close(self) -> None:
        if self.running is not None and not self.running.done():
            self.running.cancel()
            await asyncio.gather(self.running, return_exceptions=True)


def serve_metrics_app(metrics: VerifyMetrics) -> web.Application:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


