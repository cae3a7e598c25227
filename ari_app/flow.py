"""The honest call flow, one sequence for both doors (Stasis and FastAGI).

    answer -> preflight -> start MixMonitor -> verify it records -> notice -> continue

The notice is played only with the ``VerifiedRecording`` that ``Recorder.start`` returns, through
``Announcer.announce`` (ari_app/announce.py), which checks right before playing that it still
runs. If recording cannot start, the call follows its policy: ``force`` apologises and hangs up,
``optional`` continues without the notice (CALLREC_STATUS=unrecorded), ``never`` neither records
nor announces. A Stasis DID with no route is turned away (``no_route``, outcome failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ari_app.ami import AmiClient
from ari_app.announce import Announcer, Door, NotRecording
from ari_app.call import Call
from ari_app.config import AriAppSettings, QueueRule, Route
from ari_app.marked import MarkedCallers
from ari_app.recorder import Recorder, RecordingFailed, VerifiedRecording
from callrec.manifest import Direction, MarkedCaller, Policy
from callrec.reasons import StatusReason
from callrec.s3.marks import Treatment

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What the configuration says for this call."""

    policy: Policy
    language: str
    route: Route | None
    queue: str | None = None  # the queue the route leads to, if it says
    stereo: bool = False  # customer and agent on separate channels (MixMonitor D)


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
                 languages: dict[str, set[str]], marked: MarkedCallers | None = None) -> None:
        self.settings = settings
        self.marked = marked  # marked callers (ari_app/marked.py), if marks are enabled
        self.ami = ami
        self.recorder = recorder
        self.announcer = Announcer(recorder)
        # prompt -> languages Asterisk has it in (ARI /sounds), refreshed by the service
        self.languages = languages

    def plan(self, did: str | None, args: dict[str, str], channel_language: str) -> Plan:
        """Most specific first: the door's arguments, the DID's route, the route's queue
        ([queues]), then the service's defaults."""
        route = self.settings.routes.get(did or "") or self.settings.default_route
        if "context" in args:
            route = Route(context=args["context"], extension=args.get("exten", did or "s"),
                          priority=int(args.get("priority", "1")))
        queue = args.get("queue") or (route.queue if route else None)
        rule = self.settings.queues.get(queue or "") or QueueRule()
        policy = Policy(args["policy"]) if args.get("policy") in {p.value for p in Policy} \
            else (route.policy if route and route.policy else rule.policy or self.settings.policy)
        language = (args.get("lang") or (route.language if route else None) or rule.language
                    or channel_language or self.settings.notice.default_language)
        said = {"yes": True, "no": False}.get(args.get("stereo", ""))
        stereo = next((s for s in (said, route.stereo if route else None, rule.stereo)
                       if s is not None), self.settings.recording.stereo)
        return Plan(policy, language, route, queue, stereo)

    def preflight(self, plan: Plan) -> tuple[StatusReason, str] | None:
        """(reason, detail) when this call cannot be recorded and announced honestly."""
        if not self.ami.connected:
            return StatusReason.AMI_UNAVAILABLE, "AMI is not connected"
        if plan.language not in self.languages.get(self.settings.notice.prompt, set()):
            return StatusReason.PROMPT_MISSING, (f"{self.settings.notice.prompt} not installed "
                                                 f"for language {plan.language!r}")
        return None

    async def run(self, call: Call, door: Door, plan: Plan) -> None:
        """Drive the call up to the hand-off. A verified recording is kept on the call before
        anything else happens, so a hang-up or ARI error later still finishes it.

        Each step is a round trip to Asterisk, and on a loaded PBX each waits in Asterisk's
        queues. The answer goes first and alone (the caller's 200 OK, and the answer sent
        together with MixMonitor was slower on the bench); then what does not depend on another
        step goes together: the bookkeeping and starting the recording; then the notice and
        CALLREC_STATUS. The notice still waits for the verified recording."""
        await door.answer()
        call.answer()
        if plan.route is None and call.door == "stasis":
            await self._no_route(call, door, plan)
            return
        treatment = self._treatment(call, plan)
        if treatment == "refuse":
            await self._refuse_marked(call, door, plan)
            return
        started = await together(door.follow(), door.set_var("CALLREC_ID", call.call_id),
                                 self._start_recording(call, plan), keep=RecordingFailed)
        proof = started[2]
        if plan.policy is Policy.NEVER:
            await self._unrecorded(call, door, StatusReason.POLICY_NEVER)
            await door.proceed(plan.route)
            return
        if isinstance(proof, RecordingFailed):
            log.warning("%s not recorded (%s): policy %s", call.log_prefix(), proof,
                        plan.policy.value)
            await self._not_recorded(call, door, plan, proof.reason)
            return
        try:
            await self._notice(call, door, plan, proof)
        except NotRecording as exc:
            log.warning("%s not recorded (%s): policy %s", call.log_prefix(), exc,
                        plan.policy.value)
            await self.recorder.abandon(proof, call.channel_name)
            await self._not_recorded(call, door, plan,
                                     StatusReason.RECORDING_STOPPED_BEFORE_NOTICE)
            return
        if treatment == "warning" and not call.hung_up.is_set():
            # It says the call is recorded: through the gate, with the call's proof.
            await self.announcer.warn(call, door, self.settings.agent_keys.warning_prompt,
                                      plan.language, "marked caller")
        if not call.hung_up.is_set():
            await door.proceed(plan.route)

    def _treatment(self, call: Call, plan: Plan) -> str | None:
        """A marked caller's treatment (callrec/s3/marks.py), noted on the call."""
        if self.marked is None or call.direction is Direction.OUTBOUND:
            return None
        mark = self.marked.find(call.caller.number_raw)
        if mark is None:
            return None
        marked = MarkedCaller(treatment=mark.treatment.value, reason=mark.reason,
                              marked_by=mark.by, marked_at=mark.at)
        call.mark_caller(marked)
        if mark.treatment is Treatment.SUPERVISOR:
            route = self.settings.marks.supervisor_route
            if route is None:
                marked.applied = False
                marked.detail = "no marks.supervisor_route configured: the DID's route"
            else:
                plan.route = route
        log.warning("%s marked caller (%s, %s): treatment %s", call.log_prefix(), mark.reason,
                    mark.by or "?", mark.treatment.value)
        return mark.treatment.value

    async def _refuse_marked(self, call: Call, door: Door, plan: Plan) -> None:
        """Treatment refuse: the refusal prompt, then the hang-up. Nothing is recorded or said
        about recording; the manifest says why (caller_refused, outcome refused)."""
        await together(door.follow(), self._unrecorded(call, door, StatusReason.CALLER_REFUSED))
        await door.set_var("CALLREC_STATUS", "rejected")
        await self._turn_away(call, door, plan, self.settings.marks.refusal_prompt)

    async def _start_recording(self, call: Call, plan: Plan) -> VerifiedRecording | None:
        """Start and verify the recording; raises RecordingFailed with the reason."""
        if plan.policy is Policy.NEVER:
            return None
        if call.proof is not None:
            return call.proof  # taken on after a restart, its recording verified again
        problem = self.preflight(plan)
        if problem:
            raise RecordingFailed(*problem)
        proof = await self.recorder.start(call.call_id, call.channel_name, plan.stereo)
        call.mark_recorded(proof)
        return proof

    async def _notice(self, call: Call, door: Door, plan: Plan, proof: VerifiedRecording,
                      ) -> None:
        """The notice, through the one gate; CALLREC_STATUS goes with it, once the gate let
        it through (NotRecording is raised before anything is sent)."""
        playing = self.announcer.announce(door, proof, self.settings.notice.prompt,
                                          plan.language)

        async def heard() -> None:
            # Kept on the call as soon as it ends, even if the variable beside it failed.
            call.noticed(await playing)
            log.debug("%s notice %s/%s %s", call.log_prefix(), plan.language,
                      self.settings.notice.prompt,
                      "completed" if call.notice.completed else "cut short")

        # The variable goes first. Measured on the bench (Asterisk 22, requests over the
        # websocket): sent after the play request, its reply came only once the notice had
        # ended, so an ARI connection cut in the notice failed the call's hand-off.
        await together(door.set_var("CALLREC_STATUS", "recorded"), heard())

    async def announce_to_party(self, host: Call, door: Door, plan: Plan, channel: str,
                                number: str) -> None:
        """An outside party joins a call that is already recorded (a transfer out): its
        recording runs on the customer's channel and will cover them, so no second one is
        started; they hear the notice before the bridge, listed on their leg of the call."""
        leg = host.leg(channel)
        leg.endpoint = number or leg.endpoint
        leg.dial_status, leg.answered_at = "ANSWER", leg.answered_at or datetime.now(UTC)
        proof = host.proof
        try:
            if plan.policy is Policy.NEVER or proof is None:
                raise NotRecording("no verified recording on this call")
            playing = self.announcer.announce(door, proof, self.settings.notice.prompt,
                                              plan.language)
        except NotRecording as exc:
            # Nothing verified records this call now (never recorded, or stopped since): the
            # new party is not told it is.
            log.info("%s %s joins unannounced: %s", host.log_prefix(), channel, exc)
            await door.set_var("CALLREC_STATUS", "unrecorded")
            return
        await door.set_var("CALLREC_ID", host.call_id)
        await door.set_var("CALLREC_STATUS", "recorded")
        leg.notice = await playing
        log.info("%s notice %s/%s to %s, brought in by a transfer: %s", host.log_prefix(),
                 plan.language, self.settings.notice.prompt, channel,
                 "completed" if leg.notice.completed else "cut short")

    async def _not_recorded(self, call: Call, door: Door, plan: Plan,
                            reason: StatusReason) -> None:
        await self._unrecorded(call, door, reason)
        if plan.policy is Policy.FORCE:
            await self._reject(call, door, plan)
        else:
            await door.proceed(plan.route)

    async def _no_route(self, call: Call, door: Door, plan: Plan) -> None:
        """A DID callrec has no route for: a misconfiguration, not a caller who gave up. No
        recording and no notice; the caller hears the unavailable prompt."""
        log.error("%s no route for DID %r: add it to CALLREC_ROUTES or set "
                  "CALLREC_DEFAULT_ROUTE; the caller is turned away", call.log_prefix(),
                  call.did)
        # Followed like any call: without the subscription the prompt's end and the hang-up
        # never reached callrec (seen on the bench), and the call would wait for ever.
        await together(door.follow(), self._unrecorded(call, door, StatusReason.NO_ROUTE))
        await self._reject(call, door, plan)

    async def _unrecorded(self, call: Call, door: Door, reason: StatusReason) -> None:
        call.mark_unrecorded(reason)
        await together(door.set_var("CALLREC_STATUS", "unrecorded"),
                       door.set_var("CALLREC_REASON", reason))

    async def _reject(self, call: Call, door: Door, plan: Plan) -> None:
        """Policy force: no recording, no call. The apology is a recorded prompt too."""
        call.fail()
        await door.set_var("CALLREC_STATUS", "rejected")
        if call.direction is Direction.OUTBOUND:
            # The customer we called gets no "cannot take your call" prompt, and the channel is
            # left to the subroutine: GOSUB_RESULT=ABORT ends both legs before the agent's is
            # answered (a hang-up here would let Dial answer the agent first).
            return
        await self._turn_away(call, door, plan, self.settings.notice.unavailable_prompt)

    async def _turn_away(self, call: Call, door: Door, plan: Plan, prompt: str) -> None:
        """The recorded prompt that says why (when installed in the call's language), then the
        hang-up."""
        if plan.language in self.languages.get(prompt, set()):
            await door.play(prompt, plan.language)
        else:
            log.error("%s %s not installed for %r: hanging up without it", call.log_prefix(),
                      prompt, plan.language)
        await door.hangup()
