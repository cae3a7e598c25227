"""The honest call flow, one sequence for both doors (Stasis and FastAGI).

    preflight -> answer -> start MixMonitor -> verify it records -> notice -> continue

The notice is played only after ``Recorder.start`` returned a verified recording. If recording
cannot start, the call follows its policy: ``force`` apologises and hangs up, ``optional``
continues without the notice (CALLREC_STATUS=unrecorded), ``never`` neither records nor announces.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ari_app.ami import AmiClient
from ari_app.call import Call
from ari_app.config import AriAppSettings, Route
from ari_app.recorder import Recorder, RecordingFailed
from callrec.manifest import Direction, Notice, Policy, RecordingStatus

log = logging.getLogger(__name__)


@dataclass
class PlayResult:
    started_at: datetime
    ended_at: datetime
    completed: bool  # the prompt ran to its end with the caller still there


class Door(Protocol):
    """What the flow needs from the door a call came through."""

    async def answer(self) -> None: ...

    async def follow(self) -> None:
        """Arrange to keep receiving the channel's events until it is destroyed."""

    async def play(self, prompt: str, language: str) -> PlayResult: ...

    async def set_var(self, name: str, value: str) -> None: ...

    async def hangup(self) -> None: ...

    async def proceed(self, route: Route | None) -> None: ...


@dataclass
class Plan:
    """What the configuration says for this call."""

    policy: Policy
    language: str
    route: Route | None


async def together(*steps: Awaitable[Any], keep: type[BaseException] | None = None,
                   ) -> list[Any]:
    """Run ``steps`` concurrently and let every one finish (none is left running behind the
    caller); then raise the first exception, except those of type ``keep``, which are returned
    in the step's place."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not (keep and isinstance(result, keep)):
            raise result
    return results


class Flow:
    def __init__(self, settings: AriAppSettings, ami: AmiClient, recorder: Recorder,
                 languages: dict[str, set[str]]) -> None:
        self.settings = settings
        self.ami = ami
        self.recorder = recorder
        # prompt -> languages Asterisk has it in (ARI /sounds), refreshed by the service
        self.languages = languages

    def plan(self, did: str | None, args: dict[str, str], channel_language: str) -> Plan:
        route = self.settings.routes.get(did or "") or self.settings.default_route
        if "context" in args:
            route = Route(context=args["context"], extension=args.get("exten", did or "s"),
                          priority=int(args.get("priority", "1")))
        policy = Policy(args["policy"]) if args.get("policy") in {p.value for p in Policy} \
            else (route.policy if route and route.policy else self.settings.policy)
        language = (args.get("lang") or (route.language if route else None)
                    or channel_language or self.settings.notice.default_language)
        return Plan(policy, language, route)

    def preflight(self, plan: Plan) -> tuple[str, str] | None:
        """(reason, detail) when this call cannot be recorded and announced honestly."""
        if not self.ami.connected:
            return "ami_unavailable", "AMI is not connected"
        if plan.language not in self.languages.get(self.settings.notice.prompt, set()):
            return "prompt_missing", (f"{self.settings.notice.prompt} not installed for "
                                      f"language {plan.language!r}")
        return None

    async def run(self, call: Call, door: Door, plan: Plan) -> None:
        """Drive the call up to the hand-off. A verified recording is kept in ``call.active``
        before anything else happens, so a hang-up or ARI error later still finishes it.

        Each step is a round trip to Asterisk, and on a loaded PBX each waits in Asterisk's
        queues. The answer goes first and alone (the caller's 200 OK, and the answer sent
        together with MixMonitor was slower on the bench); then what does not depend on another
        step goes together: the bookkeeping and starting the recording; then the notice and
        CALLREC_STATUS. The notice still waits for the verified recording."""
        p = call.log_prefix()
        await door.answer()
        call.answered_at = datetime.now(UTC)
        started = await together(door.follow(), door.set_var("CALLREC_ID", call.call_id),
                                 self._start_recording(call, plan), keep=RecordingFailed)
        recorded = started[2]
        if plan.policy is Policy.NEVER:
            await self._unrecorded(call, door, "policy_never")
            await door.proceed(plan.route)
            return
        if isinstance(recorded, RecordingFailed):
            log.warning("%s not recorded (%s): policy %s", p, recorded, plan.policy.value)
            await self._unrecorded(call, door, recorded.reason)
            if plan.policy is Policy.FORCE:
                await self._reject(call, door, plan)
            else:
                await door.proceed(plan.route)
            return
        # Only now, with the recording proven, may the caller be told it is recorded.
        await together(door.set_var("CALLREC_STATUS", "recorded"), self._notice(call, door, plan))
        if not call.hung_up.is_set():
            await door.proceed(plan.route)

    async def _start_recording(self, call: Call, plan: Plan) -> None:
        """Start and verify the recording; raises RecordingFailed with the reason."""
        if plan.policy is Policy.NEVER or call.active is not None:
            return  # (active: taken on after a restart, its recording verified again)
        problem = self.preflight(plan)
        if problem:
            raise RecordingFailed(*problem)
        active = await self.recorder.start(call.call_id, call.channel_name)
        call.active = active
        call.status = RecordingStatus.RECORDED
        call.recording = active.record()

    async def _notice(self, call: Call, door: Door, plan: Plan) -> None:
        call.notice = await self.announce(door, plan)
        log.debug("%s notice %s/%s %s", call.log_prefix(), plan.language,
                 self.settings.notice.prompt, "completed" if call.notice.completed
                 else "cut short")

    async def announce(self, door: Door, plan: Plan) -> Notice:
        prompt = self.settings.notice.prompt
        result = await door.play(prompt, plan.language)
        # Only after the playback ran: a refused play request (caller already gone) is no notice.
        return Notice(prompt=prompt, language=plan.language, played=True,
                      started_at=result.started_at, ended_at=result.ended_at,
                      completed=result.completed)

    async def announce_to_party(self, host: Call, door: Door, plan: Plan, channel: str,
                                number: str) -> None:
        """An outside party joins a call that is already recorded (a transfer out): its
        recording runs on the customer's channel and will cover them, so no second one is
        started; they hear the notice before the bridge, listed on their leg of the call."""
        leg = host.leg(channel)
        leg.endpoint = number or leg.endpoint
        leg.dial_status, leg.answered_at = "ANSWER", leg.answered_at or datetime.now(UTC)
        active = host.active
        if plan.policy is Policy.NEVER or active is None or \
                host.status is not RecordingStatus.RECORDED or self.recorder.is_closed(active):
            # Nothing verified records this call now (never recorded, or interrupted since):
            # the new party is not told it is.
            await door.set_var("CALLREC_STATUS", "unrecorded")
            return
        await door.set_var("CALLREC_ID", host.call_id)
        await door.set_var("CALLREC_STATUS", "recorded")
        leg.notice = await self.announce(door, plan)
        log.info("%s notice %s/%s to %s, brought in by a transfer: %s", host.log_prefix(),
                 plan.language, self.settings.notice.prompt, channel,
                 "completed" if leg.notice.completed else "cut short")

    async def _unrecorded(self, call: Call, door: Door, reason: str) -> None:
        call.status, call.status_reason = RecordingStatus.UNRECORDED, reason
        await together(door.set_var("CALLREC_STATUS", "unrecorded"),
                       door.set_var("CALLREC_REASON", reason))

    async def _reject(self, call: Call, door: Door, plan: Plan) -> None:
        """Policy force: no recording, no call. The apology is a recorded prompt too."""
        call.failed = True
        await door.set_var("CALLREC_STATUS", "rejected")
        if call.direction is Direction.OUTBOUND:
            # The customer we called gets no "cannot take your call" prompt, and the channel is
            # left to the subroutine: GOSUB_RESULT=ABORT ends both legs before the agent's is
            # answered (a hang-up here would let Dial answer the agent first).
            return
        prompt = self.settings.notice.unavailable_prompt
        if plan.language in self.languages.get(prompt, set()):
            await door.play(prompt, plan.language)
        await door.hangup()
