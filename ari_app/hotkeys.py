"""The agent's hot-keys against an abusive caller: warn, and end the call.

The keys are features.conf's (``dialplan/callrec-agent-keys.conf.sample``): the agent presses
``*7`` or ``*8`` and Asterisk runs the shipped subroutine on the **caller's** channel (an
applicationmap entry with ``peer``; the bridge waits meanwhile, the agent hears silence), which
asks callrec by FastAGI (``action=warn`` / ``action=end``).

- warn: the caller hears the recorded warning, which repeats that the call is recorded. So it is
  played only through the notice's gate (``Announcer.announce``): with the call's proof, checked
  right before the prompt, else not at all.
- end: the caller hears the recorded closing, then their leg is hung up (the agent is free); the
  outcome becomes ``agent_keys.end_outcome`` (``harassment``: its retention rule applies). By
  default only after a warning on this call.

A refused key leaves the caller unaware: nothing is played to them. The agent hears a short tone
instead, whispered into their channel through an ARI snoop (the agent's channel is in the
caller's bridge, not in Stasis: ARI can only play to it through a snoop channel). Every press is a
timeline event and, when played, a supervisor alert (ari_app/alerts.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ari_app.alerts import Alerts
from ari_app.announce import Announcer, Door
from ari_app.ari import AriClient, AriError
from ari_app.call import Call
from ari_app.config import AgentKeySettings
from ari_app.pause import Pauses
from ari_app.whisper import Whisper
from callrec.manifest import AgentLeg, EventKind, PauseEnd, TimelineEvent

log = logging.getLogger(__name__)

class AgentKeys:
    def __init__(self, settings: AgentKeySettings, announcer: Announcer, ari: AriClient,
                 alerts: Alerts, identify: Callable[[list[AgentLeg]], None],
                 whisper: Whisper, pauses: Pauses) -> None:
        self.settings, self.announcer, self.ari, self.alerts = settings, announcer, ari, alerts
        self.identify = identify  # who the agents are (ari_app/agents.py)
        self.whisper, self.pauses = whisper, pauses

    async def press(self, call: Call, action: str, door: Door, language: str) -> str:
        """The result for CALLREC_KEY: played, ended or refused."""
        # Who the agent is, on copies: the call's legs are identified once, at its end, from
        # every fact gathered by then.
        legs = [leg.model_copy() for leg in call.agents]
        self.identify(legs)
        leg = current_agent(legs)
        if action == "warn":
            return await self._warn(call, door, language, leg)
        return await self._end(call, door, language, leg)

    async def _warn(self, call: Call, door: Door, language: str, leg: AgentLeg | None) -> str:
        # The warning says the call is recorded: during a pause, that is true only once the
        # recording is proven again (the caller hears that it has resumed, then the warning).
        await self.pauses.resume_before(call, PauseEnd.WARNING, door)
        event = await self.announcer.warn(call, door, self.settings.warning_prompt, language,
                                          who(leg))
        if event.kind is EventKind.WARNING_REFUSED:
            await self._refused(call, event, leg)
            return "refused"
        log.warning("%s agent %s warned the caller (%s)", call.log_prefix(), who(leg),
                    event.detail)
        self.alerts.alert(call.call_id, "warning", _facts(call, leg))
        return "played"

    async def _end(self, call: Call, door: Door, language: str, leg: AgentLeg | None) -> str:
        warned = any(e.kind is EventKind.WARNING_PLAYED for e in call.events)
        if self.settings.end_requires_warning and not warned:
            event = TimelineEvent(at=datetime.now(UTC), kind=EventKind.END_REFUSED,
                                  by=who(leg), detail="no warning on this call yet")
            call.add_event(event)
            await self._refused(call, event, leg)
            return "refused"
        # The closing says nothing of recording: it is played whatever the recording does.
        await door.play(self.settings.closing_prompt, language)
        call.end_by_agent(self.settings.end_outcome, TimelineEvent(
            at=datetime.now(UTC), kind=EventKind.ENDED_BY_AGENT, by=who(leg),
            detail=self.settings.end_outcome))
        log.warning("%s agent %s ended the call: outcome %s", call.log_prefix(), who(leg),
                    self.settings.end_outcome)
        self.alerts.alert(call.call_id, "end", _facts(call, leg))
        await door.hangup()
        return "ended"

    async def _refused(self, call: Call, event: TimelineEvent, leg: AgentLeg | None) -> None:
        """A refused key (on the timeline already): counted, and the agent hears a tone."""
        log.warning("%s %s: %s", call.log_prefix(), event.kind.value, event.detail)
        self.alerts.count(event.kind.value)
        if leg is not None:
            await self.tone(call, leg.channel)

    async def tone(self, call: Call, channel: str) -> None:
        """The refusal tone, to the agent only (whispered through a snoop channel)."""
        try:
            await self.whisper.play(channel, f"sound:{self.settings.refusal_tone}", max_s=3.0)
        except AriError as exc:
            log.info("%s refusal tone to %s not played: %r", call.log_prefix(), channel, exc)


def current_agent(legs: list[AgentLeg]) -> AgentLeg | None:
    """The agent bridged with the caller now (else the last one who was)."""
    bridged = [leg for leg in legs if leg.bridged_at]
    live = [leg for leg in bridged if leg.left_at is None]
    chosen = live or bridged
    return chosen[-1] if chosen else None


def who(leg: AgentLeg | None) -> str | None:
    return None if leg is None else leg.agent_id or leg.endpoint


def _facts(call: Call, leg: AgentLeg | None) -> dict[str, object]:
    return {"caller": call.caller.number, "did": call.did, "agent": who(leg),
            "agent_name": leg.agent_name if leg else None,
            "queue": call.queues[-1].queue if call.queues else None,
            "recorded": call.proof is not None}
