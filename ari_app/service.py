"""The call-flow service: startup -> run -> shutdown (after uvicorn's server.py).

Signal handlers only set a flag. Every task lives in a tracked set that shutdown drains. On
shutdown callrec stops taking calls (a call arriving meanwhile is sent down the dialplan's
app-down path, without a notice), lets calls still in their notice reach the hand-off, journals
every call in flight (ari_app/journal.py) and closes the ARI websocket (new calls then get
STASISSTATUS=FAILED and the shipped dialplan's fallback). The next start adopts the journal, so
each call still ends with exactly one manifest, even after kill -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ari_app.agi import AgiDoor, AgiError, AgiServer, AgiSession, agi_args, call_from_headers
from ari_app.ami import AmiClient, AmiError
from ari_app.ari import AriClient, AriError, Event
from ari_app.bridges import BridgeWatch, Party
from ari_app.call import Call
from ari_app.closewatch import CloseWatch
from ari_app.config import AriAppSettings
from ari_app.flow import Flow
from ari_app.journal import Journal, JournalError
from ari_app.metrics import CallMetrics
from ari_app.recorder import ActiveRecording, Header, Recorder, RecordingFailed
from ari_app.stasis import StasisApp, wanted
from callrec.aio import first_of
from callrec.manifest import CallManifest, RecordingStatus, write_atomic

log = logging.getLogger(__name__)

# The events callrec uses (ari_app/call.py, ari_app/stasis.py); Asterisk drops the rest for us.
# The filter applies to replies too: without RESTResponse, requests sent over the websocket
# (ari_app/ari.py) would never be answered - not even the one that sets the filter.
EVENTS = ("StasisStart", "Dial", "ChannelVarset", "ChannelHangupRequest", "ChannelDestroyed",
          "PlaybackFinished", "RESTResponse")


class Service:
    def __init__(self, settings: AriAppSettings) -> None:
        self.settings = settings
        self.should_exit = asyncio.Event()
        self.stop_taking_calls = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.call_tasks: set[asyncio.Task[Any]] = set()
        self.ari = AriClient(settings.ari)
        self.in_sight = asyncio.Event()  # ARI connected and calls resynced: events tell all
        self.bridges = BridgeWatch(settings.bridges, self._followed, self._ledger)
        self.ami = AmiClient(settings.ami,
                             self.bridges.on_event if settings.bridges.watch else None)
        self.languages: dict[str, set[str]] = {}
        self.watch = CloseWatch(settings.spool.local)
        self.recorder = Recorder(self.ami, settings.spool, settings.notice.verify_timeout_s,
                                 self.watch)
        self.flow = Flow(settings, self.ami, self.recorder, self.languages)
        self.journal = Journal(settings.spool.local)
        self.app = StasisApp(self.ari, self.flow, self._start_call, self._journal)
        self.adoptable: list[CallManifest] = []  # journal entries of an earlier run
        self.agi = AgiServer(settings.agi.host, settings.agi.port, self._agi_call)
        self.dirty: dict[str, Call] = {}  # calls whose journal entry is to be rewritten
        self.metrics = CallMetrics(lambda: len(self.app.calls))
        self.metrics_runner: Any = None

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
        self.adoptable = self.journal.open()
        self.watch.start()
        await self.ari.start()
        try:
            await self.ami.connect()
        except AmiError as exc:
            # Keep running: calls meanwhile follow their policy (preflight: ami_unavailable),
            # and panoramisk keeps reconnecting in the background.
            log.error("AMI: %s; calls will not be recorded until it is back", exc)
        self._track(self.ari.run_events(self._dispatch, self._on_ari_connect,
                                        self.stop_taking_calls, on_state=self._on_ari_state,
                                        wanted=wanted), self.tasks)
        self._track(self._flush_journal(), self.tasks)
        if self.settings.agi.enabled:
            await self.agi.start()
        if self.settings.metrics.port:
            self.metrics_runner = await self.metrics.serve(self.settings.metrics.host,
                                                           self.settings.metrics.port)
        log.info("callrec ari: app %r on %s, spool %s", self.settings.ari.app,
                 self.settings.ari.url, self.settings.spool.local)

    async def shutdown(self) -> None:
        calls = list(self.app.calls.values())
        log.info("shutting down: no new calls; %d call(s) in flight", len(calls))
        self.app.stopping = True
        await self.agi.close()
        deadline = asyncio.get_running_loop().time() + 15
        while any(not c.journaled and not c.destroyed.is_set()
                  for c in self.app.calls.values()):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)  # calls still in the notice reach their hand-off
        self.stop_taking_calls.set()
        self.bridges.flush()
        for task in self.tasks | self.call_tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.call_tasks, return_exceptions=True)
        self._write_journal()  # cancelled calls queued their latest state
        self.journal.close()
        self.ami.close()
        await self.ari.close()
        self.watch.close()
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()

    def _track(self, coro: Coroutine[Any, Any, Any], group: set[asyncio.Task[Any]]) -> None:
        task = asyncio.create_task(coro)
        group.add(task)
        task.add_done_callback(group.discard)

    # -- events -------------------------------------------------------------------------------
    async def _on_ari_connect(self) -> None:
        await self.ari.filter_events(EVENTS)
        self.app.pbx_started = await self.ari.startup_time()
        await self.refresh_prompts()
        await self.app.resync()
        await self.adopt_journal()
        await self.app.rescue_orphans()
        self.in_sight.set()

    def _on_ari_state(self, up: bool) -> None:
        if not up:
            self.in_sight.clear()

    async def adopt_journal(self) -> None:
        """Follow again the calls an earlier run journaled (once: this run's own calls are in
        ``app.calls`` until their manifest is written)."""
        while self.adoptable:
            entry = self.adoptable.pop(0)
            call = Call.restore(entry)
            call.journaled = True
            self.app.adopt(call)
            try:
                await self.ari.request("GET", f"/channels/{call.channel_id}")
                await self.ari.subscribe(f"channel:{call.channel_id}")
                await self.app.catch_up(call)
                log.info("%s adopted from the journal: channel still up", call.log_prefix())
            except AriError:
                call.ended_unseen(self.app.pbx_started)
                log.info("%s adopted from the journal: channel ended meanwhile%s",
                         call.log_prefix(), " (Asterisk restarted)" if call.pbx_restarted
                         else "")
                call.ended_at = None  # set from the recording's close time when known
            call.active = self._recording_of(entry)
            self._track(self._finish(call), self.call_tasks)

    def _recording_of(self, entry: CallManifest) -> ActiveRecording | None:
        rec = entry.recording
        if entry.status is not RecordingStatus.RECORDED or rec is None:
            return None
        asterisk_path, local_path = self.recorder.paths(entry.call_id)
        assert rec.started_at is not None and rec.verified_at is not None
        self.watch.closed(local_path.name)
        return ActiveRecording(entry.call_id, asterisk_path, local_path, rec.mixmonitor_id or "",
                               rec.started_at, rec.verified_at)

    def _journal(self, call: Call) -> None:
        """Queue the call's journal entry; a background task appends the queued entries every
        0.2 s (one line per call however many events changed it). An append is a write(2) into
        the page cache, cheaper on the loop than the hand-over to a thread would be."""
        self.dirty[call.call_id] = call

    async def _flush_journal(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self._write_journal()

    def _write_journal(self) -> None:
        batch, self.dirty = self.dirty, {}
        for call in batch.values():
            self._save(call)

    def _save(self, call: Call) -> None:
        try:
            self.journal.save(call.manifest())
        except (OSError, JournalError) as exc:
            log.error("%s journal not written: %s", call.log_prefix(), exc)

    async def refresh_prompts(self) -> None:
        for prompt in (self.settings.notice.prompt, self.settings.notice.unavailable_prompt):
            self.languages[prompt] = await self.ari.sound_languages(prompt)
        log.info("prompts installed: %s", {k: sorted(v) for k, v in self.languages.items()})

    def _dispatch(self, event: Event) -> None:
        try:
            self.app.dispatch(event)
        except Exception:  # one bad event must not stop every call
            log.exception("event %s not handled", event.get("type"))

    async def _agi_call(self, session: AgiSession) -> None:
        """One FastAGI request: the flow over AGI, then the call is followed over ARI."""
        channel = call_from_headers(session.headers)
        if not channel["id"] or self.app.stopping:
            return  # no CALLREC_DONE: the dialplan takes its app-down path, without a notice
        args = agi_args(session.headers)
        outbound = args.get("direction") == "outbound"
        host = self._call_on(args.get("agent", "")) if outbound else None
        if host is not None:  # a transfer out of a call callrec follows: notice only
            await self._join(host, session, args, str(channel.get("language") or ""))
            return
        call = Call(channel, "agi", self.settings.policy)
        if outbound:  # dialplan/callrec.conf [callrec-outbound], in Dial's U() on the callee
            call.make_outbound(args.get("customer", ""), args.get("agent", ""))
        self.app.adopt(call)  # route the channel's ARI events to it
        plan = self.flow.plan(call.did, args, str(channel.get("language") or ""))
        if outbound:
            plan.route = None  # the subroutine returns and Dial bridges the agent
        call.policy = plan.policy
        log.info("%s FastAGI request: channel %s, %s, DID %r", call.log_prefix(),
                 call.channel_name, call.direction.value, call.did)
        try:
            await self.flow.run(call, AgiDoor(session, self.ari, call), plan)
            await session.done()
        except (AgiError, AriError) as exc:
            log.info("%s FastAGI: %s", call.log_prefix(), exc)
        self._hand_off(call)
        # The AGI returns now (the dialplan goes on); the call is followed in its own task.
        self._track(self._finish(call), self.call_tasks)

    def _call_on(self, channel_name: str) -> Call | None:
        """The call callrec follows on this channel, if any."""
        return next((c for c in self.app.calls.values()
                     if channel_name and c.channel_name == channel_name), None)

    async def _join(self, host: Call, session: AgiSession, args: dict[str, str],
                    language: str) -> None:
        name = session.headers.get("agi_channel", "")
        plan = self.flow.plan(None, args, language)
        try:
            await self.flow.announce_to_party(host, AgiDoor(session, self.ari, host), plan,
                                              name, args.get("customer", ""))
            await session.done()
        except (AgiError, AriError) as exc:
            log.info("%s FastAGI (transfer to %s): %s", host.log_prefix(), name, exc)
        self._journal(host)

    def _followed(self, party: Party) -> bool:
        """A bridge party belongs to a call callrec handles (its channel, or linked to it)."""
        calls = self.app.calls
        return party.uniqueid in calls or party.linkedid in calls or any(
            c.linkedid == party.linkedid for c in calls.values())

    def _ledger(self, call: Call) -> None:
        """A bridged call callrec did not handle: its manifest says so (ari_app/bridges.py)."""
        self._track(self._final(call), self.call_tasks)

    def _start_call(self, call: Call, event: Event) -> None:
        self._track(self._call(call, event), self.call_tasks)

    # -- one call -----------------------------------------------------------------------------
    async def _call(self, call: Call, event: Event) -> None:
        try:
            await self.app.handle(call, event)
        except asyncio.CancelledError:
            call.status_reason = call.status_reason or "callrec_shutdown"
            await self._final(call)
            raise
        except Exception:
            log.exception("%s call handling failed", call.log_prefix())
            call.status_reason = call.status_reason or "callrec_error"
        self._hand_off(call)
        await self._finish(call)

    def _hand_off(self, call: Call) -> None:
        """The flow is done with the call: from now on a restart adopts it from the journal.
        Written at once, not with the 0.2 s batch: the channel has just left Stasis, so a
        restart would not find it there either (StasisApp.rescue_orphans), and a crash before
        this line would leave the call without a manifest."""
        call.journaled = True
        self.dirty.pop(call.call_id, None)
        self._save(call)

    async def _finish(self, call: Call) -> None:
        """From hand-off to the manifest. Cancelled (shutdown): the journal entry stays and the
        next run finishes the call; no manifest is written twice."""
        active = call.active
        try:
            if active is not None:
                await self._watch_recording(call, active)
            await call.destroyed.wait()
            if active is not None:
                await self._finish_recording(call, active)
        except asyncio.CancelledError:
            self._journal(call)
            self.app.forget(call)
            raise
        except Exception:
            log.exception("%s call handling failed", call.log_prefix())
            call.status_reason = call.status_reason or "callrec_error"
        await self._final(call)

    async def _final(self, call: Call) -> None:
        self.app.forget(call)
        if call.ended_at is None and call.recording and call.recording.closed_at:
            call.ended_at = call.recording.closed_at
        if self.settings.bridges.watch and call.door != "none" and self.ami.connected:
            self.bridges.check_sight(call)
        manifest = call.manifest()
        data, name = manifest.to_json(), f"{call.call_id}.json"
        delay = 0.5
        while True:
            try:
                # fsync can take milliseconds: never on the event loop that answers calls. The
                # thread does system calls only (Python work there fights the loop for the GIL).
                write = asyncio.ensure_future(asyncio.to_thread(
                    write_atomic, self.settings.spool.local, name, data))
                try:
                    path = await asyncio.shield(write)
                except asyncio.CancelledError:
                    # Shutting down mid-write: the thread finishes it anyway, so finish the
                    # bookkeeping too (else the next run would adopt the call and write twice).
                    with contextlib.suppress(OSError):
                        self._written(call, manifest, await write)
                    raise
                break
            except OSError as exc:
                # A full or failing disk: the call stays in the journal (a restart finishes
                # it) and the write is retried; the manifest is never given up on. Shutting
                # down, the journal alone keeps it: retrying here would hang the shutdown.
                self._journal(call)
                if self.stop_taking_calls.is_set():
                    log.error("%s manifest not written: %s; left in the journal for the next "
                              "run", call.log_prefix(), exc)
                    return
                log.error("%s manifest not written: %s; retrying in %.1f s", call.log_prefix(),
                          exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._written(call, manifest, path)

    def _written(self, call: Call, manifest: CallManifest, path: Path) -> None:
        self.metrics.count(manifest)
        self.dirty.pop(call.call_id, None)
        try:
            self.journal.remove(call.call_id)
        except (OSError, JournalError) as exc:  # the manifest is written: a restart skips it
            log.error("%s journal not updated: %s", call.log_prefix(), exc)
        notice = manifest.notice
        heard = "not played" if not notice.played else \
            "heard in full" if notice.completed else "cut short"
        log.info("%s manifest %s: %s%s, outcome %s, notice %s", call.log_prefix(), path.name,
                 manifest.status.value, f" ({manifest.status_reason})"
                 if manifest.status_reason else "", manifest.outcome, heard)

    async def _watch_recording(self, call: Call, active: ActiveRecording) -> None:
        """Until the channel is destroyed: the recording's file closed while the call is still
        up means MixMonitor stopped early (StopMixMonitor by someone else, a write error), and
        a file that stops growing means it cannot write (a full disk): either way the rest of
        the call is not recorded although the caller was told it would be."""
        closed = self.watch.closed(active.local_path.name)
        stall_s = self.settings.notice.stall_alert_s
        growth = (-1, time.monotonic())  # (size, when it last changed)
        while not call.destroyed.is_set():
            reason = None
            if self.recorder.is_closed(active):
                reason = "recording_stopped_mid_call"
            elif stall_s:
                growth = _growth(active.local_path, growth)
                if time.monotonic() - growth[1] >= stall_s:
                    reason = "recording_not_growing"
            if reason is not None:
                await asyncio.sleep(0.5)  # a plain hang-up also closes the file: let it land
                if call.destroyed.is_set() or call.hung_up.is_set():
                    return
                if not self.in_sight.is_set():
                    # ARI is away (Asterisk restarting?): whether the call is still up is
                    # unknown until the resync; look again then.
                    await first_of(self.in_sight.wait(), call.destroyed.wait())
                    continue
                self._interrupted(call, active, reason)
                return
            # The timeout re-probes: a close may have happened while callrec was down.
            await first_of(closed.wait(), call.destroyed.wait(),
                         timeout=min(5.0, stall_s / 2 or 5.0))

    def _interrupted(self, call: Call, active: ActiveRecording, reason: str) -> None:
        call.status, call.status_reason = RecordingStatus.INTERRUPTED, reason
        log.error("%s ALERT recording interrupted mid-call (%s, MixMonitor %s); the caller was "
                  "told the call is recorded", call.log_prefix(), reason, active.mixmonitor_id)
        self._journal(call)

    async def _finish_recording(self, call: Call, active: ActiveRecording) -> None:
        try:
            call.recording = await self.recorder.wait_closed(
                active, self.settings.notice.close_timeout_s)
            if active.header is not Header.FINISHED:
                call.writer_died()
                log.error("%s ALERT recording cut off: %s; the caller was told the call is "
                          "recorded", call.log_prefix(), call.status_reason)
        except RecordingFailed as exc:
            log.error("%s ALERT recording interrupted: %s", call.log_prefix(), exc)
            call.status, call.status_reason = RecordingStatus.INTERRUPTED, exc.reason
            call.recording = await self.recorder.describe_partial(active)


def _growth(path: Path, last: tuple[int, float]) -> tuple[int, float]:
    """(size, when it last changed) of a recording, updated from the file now."""
    try:
        size = path.stat().st_size
    except OSError:
        return last
    return (size, time.monotonic()) if size != last[0] else last
