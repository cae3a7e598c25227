"""The call-flow service: startup -> run -> shutdown (after uvicorn's server.py).

Signal handlers only set a flag. Every task lives in a tracked set that shutdown drains: on
shutdown callrec first stops taking calls (closing the ARI websocket deactivates the app, so new
calls get STASISSTATUS=FAILED and the shipped dialplan's fallback), then finishes the bookkeeping of
calls in flight - each still ends with its manifest.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from ari_app.ami import AmiClient, AmiError
from ari_app.ari import AriClient, Event
from ari_app.call import Call
from ari_app.config import AriAppSettings
from ari_app.flow import Flow
from ari_app.recorder import ActiveRecording, Recorder, RecordingFailed
from ari_app.stasis import StasisApp
from callrec.manifest import RecordingStatus

log = logging.getLogger(__name__)

# The events callrec uses (ari_app/call.py, ari_app/stasis.py); Asterisk drops the rest for us.
EVENTS = ("StasisStart", "StasisEnd", "Dial", "ChannelVarset", "ChannelHangupRequest",
          "ChannelDestroyed", "PlaybackStarted", "PlaybackFinished")


class Service:
    def __init__(self, settings: AriAppSettings) -> None:
        self.settings = settings
        self.should_exit = asyncio.Event()
        self.stop_taking_calls = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.call_tasks: set[asyncio.Task[Any]] = set()
        self.ari = AriClient(settings.ari)
        self.ami = AmiClient(settings.ami)
        self.languages: dict[str, set[str]] = {}
        self.recorder = Recorder(self.ami, settings.spool, settings.notice.verify_timeout_s)
        self.flow = Flow(settings, self.ami, self.recorder, self.languages)
        self.app = StasisApp(self.ari, self.flow, self._start_call)
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    # -- lifecycle ----------------------------------------------------------------------------
    async def serve(self) -> None:
        self.install_signal_handlers()
        await self.startup()
        try:
            await self.should_exit.wait()
        finally:
            await self.shutdown()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.should_exit.set)

    async def startup(self) -> None:
        self.settings.spool.local.mkdir(parents=True, exist_ok=True)
        await self.ari.start()
        try:
            await self.ami.connect()
        except AmiError as exc:
            # Keep running: calls meanwhile follow their policy (preflight: ami_unavailable),
            # and panoramisk keeps reconnecting in the background.
            log.error("AMI: %s; calls will not be recorded until it is back", exc)
        self._track(self.ari.run_events(self.events, self._on_ari_connect,
                                        self.stop_taking_calls), self.tasks)
        self._track(self._dispatch(), self.tasks)
        log.info("callrec ari: app %r on %s, spool %s", self.settings.ari.app,
                 self.settings.ari.url, self.settings.spool.local)

    async def shutdown(self) -> None:
        log.info("shutting down: no new calls; finishing %d call(s) in flight",
                 len(self.call_tasks))
        self.stop_taking_calls.set()
        if self.call_tasks:
            await asyncio.wait(self.call_tasks,
                               timeout=self.settings.notice.close_timeout_s + 5)
        for task in self.tasks | self.call_tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.call_tasks, return_exceptions=True)
        self.ami.close()
        await self.ari.close()

    def _track(self, coro: Coroutine[Any, Any, Any], group: set[asyncio.Task[Any]]) -> None:
        task = asyncio.create_task(coro)
        group.add(task)
        task.add_done_callback(group.discard)

    # -- events -------------------------------------------------------------------------------
    async def _on_ari_connect(self) -> None:
        await self.ari.filter_events(EVENTS)
        await self.refresh_prompts()
        await self.app.resync()

    async def refresh_prompts(self) -> None:
        for prompt in (self.settings.notice.prompt, self.settings.notice.unavailable_prompt):
            self.languages[prompt] = await self.ari.sound_languages(prompt)
        log.info("prompts installed: %s", {k: sorted(v) for k, v in self.languages.items()})

    async def _dispatch(self) -> None:
        while True:
            event = await self.events.get()
            try:
                self.app.dispatch(event)
            except Exception:  # one bad event must not stop every call
                log.exception("event %s not handled", event.get("type"))

    def _start_call(self, call: Call, event: Event) -> None:
        self._track(self._call(call, event), self.call_tasks)

    # -- one call -----------------------------------------------------------------------------
    async def _call(self, call: Call, event: Event) -> None:
        p = call.log_prefix()
        active: ActiveRecording | None = None
        try:
            active = await self.app.handle(call, event)
            await call.destroyed.wait()
            if active is not None:
                await self._finish_recording(call, active)
        except asyncio.CancelledError:
            call.status_reason = call.status_reason or "callrec_shutdown"
            raise
        except Exception:
            log.exception("%s call handling failed", p)
            call.status_reason = call.status_reason or "callrec_error"
        finally:
            self.app.forget(call)
            # fsync can take milliseconds: never on the event loop that answers calls.
            await asyncio.shield(asyncio.to_thread(self._write_manifest, call))

    async def _finish_recording(self, call: Call, active: ActiveRecording) -> None:
        try:
            call.recording = await self.recorder.wait_closed(
                active, self.settings.notice.close_timeout_s)
        except RecordingFailed as exc:
            log.error("%s ALERT recording interrupted: %s", call.log_prefix(), exc)
            call.status, call.status_reason = RecordingStatus.INTERRUPTED, exc.reason
            call.recording = await self.recorder.describe_partial(active)

    def _write_manifest(self, call: Call) -> None:
        manifest = call.manifest()
        path = manifest.write_atomic(self.settings.spool.local)
        notice = manifest.notice
        heard = "not played" if not notice.played else \
            "heard in full" if notice.completed else "cut short"
        log.info("%s manifest %s: %s%s, outcome %s, notice %s", call.log_prefix(), path.name,
                 manifest.status.value, f" ({manifest.status_reason})"
                 if manifest.status_reason else "", manifest.outcome, heard)

