"""What callrec does with one FastAGI request (the door itself is ari_app/agi.py).

The flow runs over the AGI connection; when the AGI returns the dialplan goes on, and the call is
followed over ARI to its manifest (ari_app/ending.py). An outbound AGI on the channel of a call
callrec already follows is a party brought in by a transfer: they hear the notice, nothing more.
"""

from __future__ import annotations

import logging

from ari_app.agi import AgiDoor, AgiError, AgiSession, agi_args, call_from_headers
from ari_app.ari import AriClient, AriError
from ari_app.call import Call
from ari_app.ending import Ending
from ari_app.flow import Flow
from ari_app.hotkeys import AgentKeys, current_agent, who
from ari_app.pause import Pauses
from ari_app.stasis import StasisApp
from callrec.manifest import PauseEnd, PauseSource

log = logging.getLogger(__name__)


class AgiCalls:
    def __init__(self, app: StasisApp, flow: Flow, ari: AriClient, ending: Ending,
                 keys: AgentKeys, pauses: Pauses) -> None:
        self.app, self.flow, self.ari, self.ending, self.keys = app, flow, ari, ending, keys
        self.pauses = pauses

    async def __call__(self, session: AgiSession) -> None:
        channel = call_from_headers(session.headers)
        if not channel.uniqueid or self.app.stopping:
            return  # no CALLREC_DONE: the dialplan takes its app-down path, without a notice
        args = agi_args(session.headers)
        if args.get("action") in ("warn", "end"):  # an agent's hot-key, on the caller's channel
            await self._key(session, args["action"], channel.language)
            return
        if args.get("action") in ("pause", "resume"):  # a key or a payment IVR, on that channel
            await self._pause(session, args)
            return
        outbound = args.get("direction") == "outbound"
        host = self._call_on(args.get("agent", "")) if outbound else None
        if host is not None:  # a transfer out of a call callrec follows: notice only
            await self._join(host, session, args, channel.language)
            return
        call = channel.call(self.flow.settings.policy)
        if outbound:  # dialplan/callrec.conf [callrec-outbound], in Dial's U() on the callee
            call.make_outbound(args.get("customer", ""), args.get("agent", ""))
        self.app.adopt(call)  # route the channel's ARI events to it
        plan = self.flow.plan(call.did, args, channel.language)
        if outbound:
            plan.route = None  # the subroutine returns and Dial bridges the agent
        call.follow_plan(plan.policy, plan.queue)
        log.info("%s FastAGI request: channel %s, %s, DID %r", call.log_prefix(),
                 call.channel_name, call.direction.value, call.did)
        try:
            await self.flow.run(call, AgiDoor(session, self.ari, call, self.app.journal_in_flow),
                                plan)
            await session.done()
        except (AgiError, AriError) as exc:
            log.info("%s FastAGI: %s", call.log_prefix(), exc)
        self.ending.hand_off(call)
        # The AGI returns now (the dialplan goes on); the call is followed in its own task.
        self.ending.follow(call)

    async def _key(self, session: AgiSession, action: str, language: str) -> None:
        host = self._call_on(session.headers.get("agi_channel", ""))
        try:
            if host is None:  # not a call callrec follows: nothing to vouch for
                log.warning("agent key %s on %s: not a call callrec follows; refused", action,
                            session.headers.get("agi_channel"))
                await session.command('SET VARIABLE CALLREC_KEY "refused"')
                await session.done()
                return
            result = await self.keys.press(host, action, AgiDoor(session, self.ari, host),
                                           language)
            if result != "ended":
                await AgiDoor(session, self.ari, host).set_var("CALLREC_KEY", result)
                await session.done()
        except (AgiError, AriError) as exc:
            log.info("%s FastAGI (key %s): %s", host.log_prefix() if host else "", action, exc)
        if host is not None and host.journaled:
            self.ending.journal.queue(host)

    async def _pause(self, session: AgiSession, args: dict[str, str]) -> None:
        """A pause or resume (dialplan/callrec.conf [callrec-agent-key], [callrec-pause],
        [callrec-resume]); CALLREC_PAUSE says what it did (ari_app/pause.py Answer)."""
        name = session.headers.get("agi_channel", "")
        host = self._call_on(name)
        try:
            if host is None:
                log.warning("%s on %s: not a call callrec follows; refused", args["action"], name)
                await session.command('SET VARIABLE CALLREC_PAUSE "refused"')
                await session.done()
                return
            door = AgiDoor(session, self.ari, host)
            if args["action"] == "pause":
                source = PauseSource.DIALPLAN if args.get("source") == "dialplan" \
                    else PauseSource.KEY
                answer = await self.pauses.pause(host, source, self._who(host, source, args),
                                                 door)
            else:
                answer = await self.pauses.resume(host, speaker=door)
            await door.set_var("CALLREC_PAUSE", answer.value)
            await session.done()
        except (AgiError, AriError) as exc:
            log.info("%s FastAGI (%s): %s", host.log_prefix() if host else "", args["action"],
                     exc)

    def _who(self, call: Call, source: PauseSource, args: dict[str, str]) -> str | None:
        """The agent who pressed the key, or what the IVR says it is (its Gosub argument)."""
        if source is PauseSource.DIALPLAN:
            return (args.get("by") or "ivr")[:64]
        legs = [leg.model_copy() for leg in call.agents]
        self.keys.identify(legs)
        return who(current_agent(legs))

    def _call_on(self, channel_name: str) -> Call | None:
        """The call callrec follows on this channel, if any."""
        return next((c for c in self.app.calls.values()
                     if channel_name and c.channel_name == channel_name), None)

    async def _join(self, host: Call, session: AgiSession, args: dict[str, str],
                    language: str) -> None:
        name = session.headers.get("agi_channel", "")
        plan = self.flow.plan(None, args, language)
        try:
            # The party will hear that the call is recorded: a pause ends first (proven).
            await self.pauses.resume_before(host, PauseEnd.TRANSFER)
            await self.flow.announce_to_party(host, AgiDoor(session, self.ari, host), plan,
                                              name, args.get("customer", ""))
            await session.done()
        except (AgiError, AriError) as exc:
            log.info("%s FastAGI (transfer to %s): %s", host.log_prefix(), name, exc)
        self.ending.journal.queue(host)
