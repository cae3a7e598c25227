"""Payment pauses: card details kept out of the recording, and the caller told the truth.

A pause mutes the call's own MixMonitor, by its ID (AMI ``MixMonitorMute`` with ``MixMonitorID``,
Asterisk 21+: apps/app_mixmonitor.c ``mute_mixmonitor_instance``; without the ID it would mute
every MixMonitor on the channel, the PBX's own too). Asterisk keeps writing the file, zeros in
place of both directions (main/audiohook.c), so the recording keeps the call's timing: never a stop
and a second file.

The caller was told "this call is recorded", so the pause is the one moment that promise could
break. The call's proof is withdrawn for the whole pause (``Call.pause``): no prompt that says the
call is recorded can be played meanwhile. On resume the recording is unmuted and proven again
before the "recording has resumed" prompt, which goes through the notice's gate:

- the unmute by ID succeeded: the MixMonitor's datastore is still on the channel (StopMixMonitor
  removes it, ``stop_mixmonitor_full``), and its audiohook's mute flags are cleared;
- Recorder's rule holds again (``Recorder.reprove``: the ID, ``MIXMONITOR(<id>,filename)`` naming
  our file, the file open for writing);
- the file grows after the unmute (its writer still writes; a muted one grows too, so growth alone
  proves nothing, and the unmute alone does not prove the writer lives).

A resume that cannot be proven plays nothing, ends the pause ``resume_proven: false``, makes the
call interrupted (``recording_not_resumed``) and alerts. The pause is journaled before the mute is
sent: a callrec killed during a pause finds it after its restart and resumes it (ari_app/resync.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ari_app import AriAppError
from ari_app.ami import AmiClient, AmiError, AmiRefused
from ari_app.announce import Announcer, NotRecording, PlayResult, Speaker
from ari_app.call import Call
from ari_app.config import AriAppSettings, QueueRule
from ari_app.metrics import CallMetrics
from ari_app.recorder import Recorder, VerifiedRecording
from ari_app.whisper import Whisper
from callrec.backoff import Backoff
from callrec.lifecycle import Tasks
from callrec.manifest import EventKind, Pause, PauseEnd, PauseSource, TimelineEvent

log = logging.getLogger(__name__)

GROWTH_POLL_S = 0.02


class Answer(StrEnum):
    """What a pause or resume request did (CALLREC_PAUSE, the control API's ``state``)."""

    PAUSED = "paused"
    ALREADY_PAUSED = "already_paused"
    RESUMED = "resumed"
    NOT_PAUSED = "not_paused"
    UNPROVEN = "unproven"  # the pause ended; the recording could not be proven since
    REFUSED = "refused"  # not paused: disabled here, nothing recorded, the mute refused


@dataclass
class WhisperSpeaker:
    """The caller's prompts when no door is at hand (the API, the timer, a restart): whispered
    into their channel (ari_app/whisper.py)."""

    whisper: Whisper
    channel: str

    async def play(self, prompt: str, language: str) -> PlayResult:
        return await self.whisper.play(self.channel, f"sound:{prompt}", language)


class Pauses:
    def __init__(self, settings: AriAppSettings, ami: AmiClient, recorder: Recorder,
                 announcer: Announcer, whisper: Whisper, metrics: CallMetrics, tasks: Tasks,
                 save: Callable[[Call], None],
                 alert: Callable[[str, str, dict[str, Any]], None]) -> None:
        self.settings, self.ami, self.recorder = settings, ami, recorder
        self.announcer, self.whisper, self.metrics, self.tasks = announcer, whisper, metrics, tasks
        self.save = save  # the journal, now (not with the batch): ari_app/ending.py JournalBatch
        self.alert = alert
        self._timers: dict[str, asyncio.Task[Any]] = {}
        # One resume at a time per call: a second (the agent's key while the timer resumes)
        # waits for the first, then finds the pause ended and the proof there, or not.
        self._resuming: dict[str, asyncio.Lock] = {}

    def refusal(self, call: Call) -> str | None:
        """Why this call's recording may not be paused, or None."""
        route = self.settings.routes.get(call.did or "") or self.settings.default_route
        queue = call.queues[-1].queue if call.queues else call.queue_hint
        rule = self.settings.queues.get(queue or "") or QueueRule()
        allowed = next((a for a in (route.pause if route else None, rule.pause)
                        if a is not None), self.settings.pause.enabled)
        if not allowed:
            return "pauses are disabled for this call's route or queue"
        if call.ended_at is not None:
            return "the call has ended"
        if call.proof is None or call.file is None:
            return f"no verified recording runs ({call.status.value})"
        return None

    async def pause(self, call: Call, source: PauseSource, by: str | None,
                    speaker: Speaker | None = None) -> Answer:
        if call.paused is not None:
            return Answer.ALREADY_PAUSED
        why = self.refusal(call)
        if why is not None:
            return self._refused(call, source, by, why)
        started = time.monotonic()
        call.pause(Pause(started_at=datetime.now(UTC), source=source, by=by))
        self.save(call)  # before the mute: a restart knows the recording may be muted
        try:
            await self._mute(call, True)
        except AmiError as exc:
            # Muted or not is unknown (a lost reply) or the MixMonitor is gone (refused): the
            # caller is told nothing, and the recording is unmuted and proven if it can be.
            log.warning("%s pause by %s (%s) not made: %s", call.log_prefix(), by, source.value,
                        exc)
            await self._end(call, PauseEnd.RESUME, None, announce=False,
                            detail=f"mute not confirmed: {exc}")
            return self._refused(call, source, by, f"mute not confirmed: {exc}")
        self.metrics.pause_latency.observe(time.monotonic() - started)
        self.metrics.pauses.labels(source.value).inc()
        self._timers[call.call_id] = self.tasks.spawn(self._auto_resume(call, call.pauses[-1]))
        log.info("%s recording paused by %s (%s)", call.log_prefix(), by or "?", source.value)
        await self._prompt(speaker, self._say(call, speaker, self.settings.pause.paused_prompt))
        return Answer.PAUSED

    async def resume(self, call: Call, ended_by: PauseEnd = PauseEnd.RESUME,
                     speaker: Speaker | None = None) -> Answer:
        """End the call's pause (if any): unmute, prove, then say so through the gate."""
        return await self._end(call, ended_by, speaker, announce=True)

    async def resume_before(self, call: Call, ended_by: PauseEnd,
                            speaker: Speaker | None = None) -> None:
        """What must not happen during a pause is about to (a warning, a transfer's notice,
        another agent): the pause ends first, its prompt heard before what follows, which finds
        the proof if it holds."""
        if call.paused is not None:
            await self._end(call, ended_by, speaker, announce=True, in_line=True)

    def after_restart(self, call: Call) -> None:
        """A call adopted from the journal in a pause an earlier run made (killed meanwhile):
        the pause ends now, the recording unmuted and proven, the caller told if it is."""
        self.tasks.spawn(self._end(call, PauseEnd.RESTART, None, announce=True))

    async def resume_all(self, calls: list[Call]) -> None:
        """callrec is stopping: no pause outlives it (a restart would end them too, later)."""
        paused = [c for c in calls if c.paused is not None]
        await asyncio.gather(*(self._end(c, PauseEnd.RESTART, None, announce=True,
                                         detail="callrec stopped") for c in paused))

    def agents_changed(self, call: Call, before: frozenset[str]) -> None:
        """Another party was bridged with the paused caller, or one left (ari_app/stasis.py): a
        pause outlives no agent leg. A party the call was never offered to came by a transfer."""
        joined = call.live_agents() - before
        offered = {leg.channel for leg in call.agents if leg.offered_at or leg.queue}
        why = PauseEnd.TRANSFER if joined - offered else PauseEnd.AGENT_CHANGED
        self.tasks.spawn(self.resume_before(call, why))

    def ended(self, call: Call) -> None:
        """The call is over: its timer goes (an open pause ends with it, ``Call.manifest``)."""
        self._stop_timer(call)
        self._resuming.pop(call.call_id, None)

    def _stop_timer(self, call: Call) -> None:
        timer = self._timers.pop(call.call_id, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _end(self, call: Call, ended_by: PauseEnd, speaker: Speaker | None,
                   announce: bool, detail: str | None = None, in_line: bool = False,
                   ) -> Answer:
        async with self._resuming.setdefault(call.call_id, asyncio.Lock()):
            if call.paused is None:
                return Answer.NOT_PAUSED
            self._stop_timer(call)
            return await self._resume_now(call, ended_by, speaker, announce, detail, in_line)

    async def _resume_now(self, call: Call, ended_by: PauseEnd, speaker: Speaker | None,
                          announce: bool, detail: str | None, in_line: bool) -> Answer:
        started = time.monotonic()
        proof, unmuted_at = await self._unmute_and_prove(call)
        # The pause ends where the audio comes back: at the unmute, not once it is proven.
        at = unmuted_at or datetime.now(UTC)
        if isinstance(proof, str):
            call.resume_unproven(ended_by, at, proof)
            self.save(call)
            self.metrics.pause_ends.labels(ended_by.value, "false").inc()
            log.error("ALERT %s pause ended (%s), recording not proven since: %s",
                      call.log_prefix(), ended_by.value, proof)
            self.alert(call.call_id, "resume_unproven", {"ended_by": ended_by.value,
                                                         "detail": proof})
            return Answer.UNPROVEN
        call.resumed(proof, ended_by, at, detail)
        self.save(call)
        self.metrics.resume_latency.observe(time.monotonic() - started)
        self.metrics.pause_ends.labels(ended_by.value, "true").inc()
        log.info("%s recording resumed (%s), proven", call.log_prefix(), ended_by.value)
        if announce:
            await self._prompt(speaker, self._announce_resumed(call, speaker, proof), in_line)
        return Answer.RESUMED

    async def _prompt(self, speaker: Speaker | None, prompt: Coroutine[Any, Any, None],
                      in_line: bool = False) -> None:
        """A door's prompt is played in line (the AGI returns after it); a whispered one behind
        the answer (the API replies once the recording is muted, or proven again), unless what
        follows must come after it."""
        if speaker is None and not in_line:
            self.tasks.spawn(prompt)
        else:
            await prompt

    async def _announce_resumed(self, call: Call, speaker: Speaker | None,
                                proof: VerifiedRecording) -> None:
        prompt = self.settings.pause.resumed_prompt
        try:
            await self.announcer.announce(speaker or self._whisper(call), proof, prompt,
                                          self._language(call))
        except NotRecording as exc:
            log.warning("%s %s", call.log_prefix(), exc)
        except AriAppError as exc:
            log.info("%s %s not played: %s", call.log_prefix(), prompt, exc)

    async def _unmute_and_prove(self, call: Call,
                                ) -> tuple[VerifiedRecording | str, datetime | None]:
        """The recording's proof after the unmute (or why there is none), and when the unmute
        took effect (None: it did not)."""
        file = call.file
        if file is None:
            return "no recording file", None
        timeout = self.settings.pause.prove_timeout_s
        deadline, pauses = time.monotonic() + timeout, Backoff(first=0.05, cap=0.5, jitter=0.0)
        while True:
            sent = datetime.now(UTC)
            try:
                await self._mute(call, False)
                break
            except AmiRefused as exc:
                return f"MixMonitor {file.mixmonitor_id} not found: {exc}", None
            except AmiError as exc:
                if time.monotonic() >= deadline:
                    return f"unmute not confirmed within {timeout:.1f} s: {exc}", None
                await asyncio.sleep(pauses.next())
        unmuted = sent + (datetime.now(UTC) - sent) / 2  # the flag is cleared in between
        size = _size(file.local_path)
        proof = await self.recorder.reprove(call.channel_name, file)
        if proof is None:
            return "the recording's MixMonitor or file no longer verifies", unmuted
        while _size(file.local_path) <= size:
            if time.monotonic() >= deadline:
                return (f"{file.local_path.name} did not grow within {timeout:.1f} s of the "
                        "unmute"), unmuted
            await asyncio.sleep(GROWTH_POLL_S)
        return proof, unmuted

    async def _mute(self, call: Call, on: bool) -> None:
        file = call.file
        await self.ami.action({"Action": "MixMonitorMute", "Channel": call.channel_name,
                               "MixMonitorID": file.mixmonitor_id if file else "",
                               "Direction": "both", "State": "1" if on else "0"})

    async def _auto_resume(self, call: Call, pause: Pause) -> None:
        await asyncio.sleep(self.settings.pause.max_s)
        if call.paused is pause and call.ended_at is None:
            log.info("%s pause reached %.0f s: resuming", call.log_prefix(),
                     self.settings.pause.max_s)
            await self._end(call, PauseEnd.AUTO, None, announce=True)

    def _refused(self, call: Call, source: PauseSource, by: str | None, why: str) -> Answer:
        call.add_event(TimelineEvent(at=datetime.now(UTC), kind=EventKind.PAUSE_REFUSED, by=by,
                                     detail=f"{source.value}: {why}"))
        self.metrics.pauses_refused.inc()
        log.warning("%s pause by %s (%s) refused: %s", call.log_prefix(), by or "?",
                    source.value, why)
        if call.journaled:
            self.save(call)
        return Answer.REFUSED

    async def _say(self, call: Call, speaker: Speaker | None, prompt: str) -> None:
        """A prompt that claims nothing about recording running (the pause's)."""
        try:
            await (speaker or self._whisper(call)).play(prompt, self._language(call))
        except AriAppError as exc:
            log.info("%s %s not played: %s", call.log_prefix(), prompt, exc)

    def _whisper(self, call: Call) -> Speaker:
        return WhisperSpeaker(self.whisper, call.channel_name)

    def _language(self, call: Call) -> str:
        return call.notice.language or self.settings.notice.default_language


def _size(path: Path) -> int:
    try:
        return int(path.stat().st_size)
    except OSError:
        return -1
