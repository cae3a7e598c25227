"""The Stasis door: calls that enter ``Stasis(callrec[,key=value...])``.

Events arrive from one websocket reader into a queue; ``dispatch`` routes each to its call without
awaiting anything slow, so the reader never blocks (Asterisk drops slow readers). Each call runs as
its own tracked task: the flow, then following the call to its end, then its one manifest.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ari_app.announce import PlayResult
from ari_app.ari import AriClient, AriError, Event
from ari_app.call import Call
from ari_app.callstate import WATCHED_VARIABLES
from ari_app.config import Route
from ari_app.ending import Ending
from ari_app.flow import Flow
from ari_app.whisper import TONE_ARGS, Snoops
from callrec.manifest import CallManifest, Notice
from callrec.reasons import StatusReason

log = logging.getLogger(__name__)


UNSEEN = "unseen"  # a playback state of ours: it ended while ARI could not tell how


class StasisDoor:
    """The flow's operations on a channel that is in Stasis, done over ARI."""

    def __init__(self, ari: AriClient, call: Call,
                 playing: Callable[[Call, str, str, datetime], None] | None = None) -> None:
        self.ari = ari
        self.call = call
        self.playing = playing  # a prompt began (StasisApp.journal_in_flow)

    async def answer(self) -> None:
        await self.ari.answer(self.call.channel_id)

    async def follow(self) -> None:
        # The channel leaves Stasis on continue(); the subscription keeps its events coming.
        await self.ari.subscribe(f"channel:{self.call.channel_id}")

    async def set_var(self, name: str, value: str) -> None:
        await self.ari.set_var(self.call.channel_id, name, value)

    async def hangup(self) -> None:
        await self.ari.hangup(self.call.channel_id)

    async def play(self, prompt: str, language: str) -> PlayResult:
        """Play to the end. ARI playbacks cannot be skipped with DTMF; a hang-up ends them.
        A playback whose end ARI could not report (the websocket was away: StasisApp.resync
        finds it gone) is played again, in full: the caller may hear part of it twice, and the
        notice on record is one known to have finished."""
        call = self.call
        for attempt in range(3):
            started = datetime.now(UTC)
            playback_id = f"{call.call_id}-{prompt.rsplit('/', 1)[-1]}" + \
                (f"-{attempt}" if attempt else "")
            done = call.expect_playback(playback_id)
            await self.ari.play(call.channel_id, f"sound:{prompt}", language, playback_id)
            if attempt == 0 and self.playing is not None:
                self.playing(call, prompt, language, started)
            hangup: asyncio.Future[bool] = asyncio.ensure_future(call.hung_up.wait())
            try:
                waiting: list[asyncio.Future[Any]] = [done, hangup]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                hangup.cancel()
            if not (done.done() and done.result() == UNSEEN) or call.hung_up.is_set():
                break
            log.warning("%s %s ended while ARI was away: playing it again in full",
                        call.log_prefix(), prompt)
        # A hang-up also ends the playback with state "done" (res_stasis_playback.c), so the
        # notice counts as heard in full only if the caller was still there when it finished.
        completed = done.done() and done.result() != UNSEEN and not call.hung_up.is_set()
        return PlayResult(started, datetime.now(UTC), completed)

    async def proceed(self, route: Route | None) -> None:
        if route is None:  # (the flow turns such calls away before: Flow._no_route)
            await self.hangup()
            return
        await self.ari.continue_in_dialplan(self.call.channel_id, route.context,
                                            route.extension, route.priority)


# On raw JSON text: inside a JSON string every quote is escaped, so these match real keys only.
_VARSET = re.compile(r'"type"\s*:\s*"ChannelVarset"')
_WATCHED = re.compile(r'"variable"\s*:\s*"(?:' + "|".join(WATCHED_VARIABLES) + ')"')


def wanted(raw: str) -> bool:
    """Whether an ARI event is worth parsing: all but the ChannelVarset events of variables
    callrec does not watch (most of a bridged call's events; parsing them was a fifth of
    callrec's CPU)."""
    return _VARSET.search(raw) is None or _WATCHED.search(raw) is not None


def parse_args(args: list[str]) -> dict[str, str]:
    """``Stasis(callrec,context=agents,lang=en)`` -> {"context": "agents", "lang": "en"}."""
    parsed = {}
    for arg in args:
        key, sep, value = str(arg).partition("=")
        if sep and key.strip():
            parsed[key.strip().lower()] = value.strip()
    return parsed


class StasisApp:
    def __init__(self, ari: AriClient, flow: Flow, ending: Ending,
                 calls: dict[str, Call] | None = None, snoops: Snoops | None = None) -> None:
        self.ari = ari
        self.snoops = Snoops() if snoops is None else snoops  # ours, not calls
        # Who is bridged with a paused call changed (ari_app/pause.py ends the pause).
        self.agents_changed: Callable[[Call, frozenset[str]], None] = lambda call, before: None
        self.flow = flow
        self.ending = ending
        self.calls: dict[str, Call] = {} if calls is None else calls  # by channel id
        self.stopping = False
        self.pbx_started: datetime | None = None  # this Asterisk's start (set at each connect)
        # Journal entries of calls an earlier run left in their flow, still in Stasis (by
        # channel id): what rescue_orphans takes them on with (Resync.adopt_journal).
        self.in_flow: dict[str, CallManifest] = {}

    def dispatch(self, event: Event) -> None:
        """Route one event; never awaits (runs between websocket reads)."""
        # Most events name a "channel"; Dial names the "caller" (ours) and the "peer" (the agent).
        channel = event.get("channel") or event.get("caller") or {}
        channel_id = str(channel.get("id", ""))
        if event.get("type") == "StasisStart" and TONE_ARGS in (event.get("args") or []):
            self.snoops.started(channel_id)  # whispering a tone to an agent (ari_app/hotkeys.py)
            return
        if event.get("type") == "StasisStart" and channel_id and channel_id not in self.calls:
            self._start(Call.from_stasis(channel, self.flow.settings.policy), event)
            return
        found = self.calls.get(channel_id)
        if found is None and str(event.get("type", "")).startswith("Playback"):
            target = str((event.get("playback") or {}).get("target_uri", ""))
            found = self.calls.get(target.removeprefix("channel:"))
        if found is None:
            return
        before = found.live_agents() if found.paused else None
        if found.on_event(event) and found.journaled:
            self.ending.journal.queue(found)
        if before is not None and found.live_agents() != before:
            self.agents_changed(found, before)

    def _start(self, call: Call, event: Event) -> None:
        self.calls[call.channel_id] = call
        self.ending.tasks.spawn(self._call(call, event))

    async def _call(self, call: Call, event: Event) -> None:
        """One call entering Stasis: the flow, the hand-off, then following it to its end."""
        try:
            await self.handle(call, event)
        except asyncio.CancelledError:
            call.note_reason(StatusReason.CALLREC_SHUTDOWN)
            await self.ending.final(call)
            raise
        except Exception:
            log.exception("%s call handling failed", call.log_prefix())
            call.note_reason(StatusReason.CALLREC_ERROR)
        self.ending.hand_off(call)
        await self.ending.finish(call)

    async def handle(self, call: Call, event: Event) -> None:
        """The flow for one call entering Stasis, up to its hand-off."""
        p = call.log_prefix()
        channel = event.get("channel") or {}
        log.info("%s entered Stasis: channel %s, DID %r", p, call.channel_name, call.did)
        plan = self.flow.plan(call.did, parse_args(event.get("args") or []),
                              channel.get("language") or "")
        call.follow_plan(plan.policy, plan.queue)
        try:
            if self.stopping:
                # Shutting down: take the app-down path of the shipped dialplan (no notice).
                call.mark_unrecorded(StatusReason.CALLREC_STOPPING)
                await self.ari.subscribe(f"channel:{call.channel_id}")
                await self.ari.continue_in_dialplan(call.channel_id, "callrec-app-down",
                                                    call.did or "s", 1)
                return
            await self.flow.run(call, StasisDoor(self.ari, call, self.journal_in_flow), plan)
        except AriError as exc:
            # Typically the caller hung up while we were working on the channel.
            log.info("%s ARI: %s", p, exc)

    def journal_in_flow(self, call: Call, prompt: str, language: str, at: datetime) -> None:
        """The notice began, in the call's flow: the call is journaled now (one write(2), not
        the batch). Killed before the hand-off, callrec would otherwise know nothing of it if
        the caller hung up before it was back: no channel left in Stasis to take on, no
        journal line, no manifest, though the caller heard that the call is recorded. With the
        line, the next run writes its manifest (notice begun, recording found), or takes the
        channel on with the recording's first proof (Resync.adopt_journal, rescue_orphans)."""
        if prompt != self.flow.settings.notice.prompt or call.notice.played \
                or call.recording is None:
            return
        call.noticed(Notice(prompt=prompt, language=language, played=True, started_at=at))
        self.ending.journal.save(call)

    @staticmethod
    def stasis_args(channel: dict[str, Any], app_name: str) -> str | None:
        """The Stasis arguments of a channel sitting in ``app_name`` (None: not in it)."""
        dialplan = channel.get("dialplan") or {}
        app, _, args = str(dialplan.get("app_data") or "").partition(",")
        return args if dialplan.get("app_name") == "Stasis" and app.strip() == app_name \
            else None

    async def rescue_orphans(self) -> None:
        """Channels still in this app's Stasis that no callrec knows: an earlier run died in
        their flow (kill -9 before the hand-off). Asterisk keeps them in Stasis, silent, until
        the caller gives up, and no manifest would ever describe them. Each is taken on as a
        call entering now: its running recording is kept if it still verifies (else stopped
        and a new one started), and the notice is played again, in full, before the hand-off.
        Run after the journal is adopted: only calls in their flow are still in Stasis."""
        for channel in await self.ari.request("GET", "/channels"):
            args = self.stasis_args(channel, self.ari.settings.app)
            if args is None or channel.get("id") in self.calls:
                continue
            log.warning("channel %s %s was left in Stasis by an earlier run: taking it on",
                        channel.get("id"), channel.get("name"))
            # Before the call is made: a recording that still verifies gives it its id.
            proof = await self.flow.recorder.resume(str(channel.get("name", "")))
            policy = self.flow.settings.policy
            earlier = self.in_flow.pop(str(channel.get("id")), None)
            call = Call.from_stasis(channel, policy) if proof is None else \
                Call.taken_on(channel, policy, proof, earlier)
            if earlier is not None and earlier.call_id != call.call_id:
                self.ending.journal.drop(earlier.call_id)  # its recording did not verify
            if proof is not None:
                log.warning("%s taken on after a restart: its recording %s still runs",
                            call.log_prefix(), proof.file.local_path.name)
            self._start(call, {"type": "StasisStart", "channel": channel,
                               "args": args.split(",") if args else []})

    async def resync(self) -> None:
        """After a reconnect: events were lost meanwhile; calls whose channel is gone ended."""
        channels = await self.ari.request("GET", "/channels")
        alive = {c["id"] for c in channels}
        for channel_id, call in list(self.calls.items()):
            if channel_id not in alive and not call.destroyed.is_set():
                call.ended_unseen(self.pbx_started)
                log.info("%s channel gone while ARI was away%s", call.log_prefix(),
                         " (Asterisk restarted)" if call.pbx_restarted else "")
                if call.file is None:  # else its recording's close tells when it ended
                    call.end(datetime.now(UTC))
            elif channel_id in alive:
                await self.ari.subscribe(f"channel:{channel_id}")
                await self.catch_up(call)
                await self._check_playback(call)

    async def _check_playback(self, call: Call) -> None:
        """A playback that finished while ARI was away sent its PlaybackFinished to nobody:
        without this the flow would wait for it, the caller in silence, until they hung up."""
        waiting = call.playback_done
        if waiting is None or waiting.done() or not call.playback_id:
            return
        if not await self.ari.playback_exists(call.playback_id) and not waiting.done():
            waiting.set_result(UNSEEN)

    SNAPSHOT = ("DIALEDPEERNAME", "DIALSTATUS", "BRIDGEPEER", "CALLREC_OUTCOME", "QUEUESTATUS")

    async def catch_up(self, call: Call) -> None:
        """Events are not replayed after a reconnect: read the channel's state instead."""
        values = {}
        for name in self.SNAPSHOT:
            values[name] = await self.ari.get_var(call.channel_id, name) or ""
        call.apply_snapshot(values)

    def adopt(self, call: Call) -> None:
        self.calls[call.channel_id] = call

    def forget(self, call: Call) -> None:
        self.calls.pop(call.channel_id, None)
