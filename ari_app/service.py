"""The call-flow service's lifecycle: startup -> run -> shutdown (callrec/lifecycle.py).

On shutdown callrec stops taking calls (a call arriving meanwhile is sent down the dialplan's
app-down path, without a notice), lets calls still in their notice reach the hand-off within the
grace period, journals every call in flight (ari_app/journal.py) and closes the ARI websocket (new
calls then get STASISSTATUS=FAILED and the shipped dialplan's fallback). The next start adopts
the journal, so each call still ends with exactly one manifest, even after kill -9.

The parts are made and connected in ari_app/wiring.py; this class only starts and stops them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ari_app.ami import AmiError
from ari_app.ari import Event
from ari_app.wiring import Parts
from callrec.lifecycle import Stop, Tasks

log = logging.getLogger(__name__)


class Service:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.tasks = Tasks()  # the service's own loops (calls are in parts.call_tasks)
        self.metrics_runner: Any = None

    async def startup(self) -> None:
        p, settings = self.parts, self.parts.settings
        settings.spool.local.mkdir(parents=True, exist_ok=True)
        p.resync.adoptable = p.journal.journal.open()
        recovered = await asyncio.to_thread(p.writer.recover)
        if recovered:
            log.warning("evidence: %d sealed manifest(s) in the spool were missing from the "
                        "chain's log (a crash while writing them); appended", recovered)
        p.recorder.watch.start()
        await p.ari.start()
        try:
            await p.ami.connect()
        except AmiError as exc:
            # Keep running: calls meanwhile follow their policy (preflight: ami_unavailable),
            # and panoramisk keeps reconnecting in the background.
            log.error("AMI: %s; calls will not be recorded until it is back", exc)
        self.tasks.spawn(p.ari.run_events(self._dispatch, p.resync.on_connect,
                                          p.sight.stopping, on_state=p.resync.on_state,
                                          wanted=p.wanted))
        self.tasks.spawn(p.journal.run())
        p.webhooks.start(self.tasks)  # the host's sender, or waiting for its lock
        if settings.marks.enabled:  # a new mark reaches this host within marks.refresh_s
            self.tasks.spawn(p.marked.run())
        if settings.agi.enabled:
            await p.agi.start()
        if settings.api.port:
            await p.control.start()
        if settings.metrics.port:
            self.metrics_runner = await p.metrics.serve(settings.metrics.host,
                                                        settings.metrics.port)
        log.info("callrec ari: app %r on %s, spool %s", settings.ari.app, settings.ari.url,
                 settings.spool.local)

    async def run(self, stop: Stop) -> None:
        await stop.requested.wait()

    async def shutdown(self, stop: Stop) -> None:
        p = self.parts
        log.info("shutting down: no new calls; %d call(s) in flight", len(p.app.calls))
        p.app.stopping = True
        await p.agi.close()
        await p.control.close()
        # Calls still in the notice reach their hand-off (the journal then keeps them), and
        # paused ones are resumed.
        if not await stop.within_grace(asyncio.gather(
                self._handed_off(), p.pauses.resume_all(list(p.app.calls.values())))):
            log.warning("grace period over: calls not yet handed off are cut short")
        p.sight.stopping.set()
        p.takeon.remember(p.bridges.flush())
        await self.tasks.cancel()
        await p.call_tasks.cancel()
        await p.webhooks.close()  # undelivered events stay in the outbox for the next sender
        p.journal.flush()  # cancelled calls queued their latest state
        p.journal.journal.close()
        p.ami.close()
        await p.ari.close()
        p.recorder.watch.close()
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()

    async def _handed_off(self) -> None:
        calls = self.parts.app.calls
        while any(not c.journaled and not c.destroyed.is_set() for c in calls.values()):
            await asyncio.sleep(0.05)

    def _dispatch(self, event: Event) -> None:
        try:
            self.parts.app.dispatch(event)
        except Exception:  # one bad event must not stop every call
            log.exception("event %s not handled", event.get("type"))
