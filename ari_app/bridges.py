"""The safety net: every two-party bridge on the PBX, watched over AMI (``BridgeEnter`` /
``BridgeLeave``), leaves a ledger entry when callrec did not handle the call.

A dialplan mistake (a route that dials agents without going through a callrec door) must be
visible, not silent: such a bridge gets a manifest ``unrecorded`` with the reason
``not_routed_through_callrec`` (and the unrecorded-calls metric, and a WARNING). Internal calls
(no party on a trunk) follow ``bridges.internal_policy``, ``never`` by default: their entry says
``internal_call``. callrec never starts a recording here: the parties were not told.

Calls that took the dialplan's app-down path (``CALLREC_REASON=app_down``: callrec was not
running, or was restarting) are watched from that ``VarSet`` on: bridged, their entry says
``app_down``; ended without a bridge, they get one too. After a restart, what is still up is taken
on (ari_app/takeon.py).

Skipped: bridges with a Local channel (one leg of a call whose real pair meets in another bridge)
and bridges where a party belongs to a call callrec follows (same unique id or linked id: the
agent legs, transfers and consultation of a recorded call are that call's business).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ari_app.call import Call
from ari_app.callstate import endpoint_of
from ari_app.config import BridgeSettings
from callrec.manifest import AgentLeg, Party, Policy, normalise_number
from callrec.reasons import StatusReason

log = logging.getLogger(__name__)
# BridgeEnter of a bridge made just as AMI logged in may predate the session's event stream.
SIGHT_MARGIN = timedelta(seconds=2)


@dataclass
class BridgeParty:
    uniqueid: str
    linkedid: str
    channel: str
    number: str
    name: str
    entered_at: datetime

    @classmethod
    def from_event(cls, event: Any, entered_at: datetime | None = None) -> BridgeParty:
        def get(key: str) -> str:
            value = str(event.get(key) or "")
            return "" if value in ("<unknown>", "(null)") else value

        return cls(get("Uniqueid"), get("Linkedid"), get("Channel"), get("CallerIDNum"),
                   get("CallerIDName"), entered_at or datetime.now(UTC))


class BridgeWatch:
    def __init__(self, settings: BridgeSettings, followed: Callable[[BridgeParty], bool],
                 ledger: Callable[[Call], None],
                 bridged: Callable[[list[str]], None] = lambda channels: None,
                 kept: Callable[[list[str]], None] = lambda uniqueids: None) -> None:
        self.settings = settings
        self.followed = followed
        self.ledger = ledger
        self.bridged = bridged  # two channels met (RouteWatch.on_bridged)
        # Parties whose entry was written before their bridge ended (TakeOn.remember): the
        # next run, after a kill -9, must not take them on and write a second one.
        self.kept = kept
        self.bridges: dict[str, dict[str, BridgeParty]] = {}
        self.pending: dict[str, tuple[list[BridgeParty], StatusReason, Policy]] = {}
        self.seen = 0  # bridge events received
        self.warned = False
        # Channels the dialplan sent down its app-down path, not bridged yet (by unique id),
        # and those that then met someone in a bridge.
        self.app_down: dict[str, BridgeParty] = {}
        self.down_bridged: set[str] = set()
        self.written: set[str] = set()  # bridges whose entry is written already
        self.since: datetime | None = None  # the AMI session's login: events flow from then on

    def logged_in(self, at: datetime) -> None:
        """AMI (re)connected at ``at``: a bridge entered before then sent no event to see."""
        self.since = at

    def check_sight(self, call: Call) -> None:
        """A call of callrec's reached an agent, yet AMI never sent a bridge event: the AMI
        user cannot read ``call`` events (manager.conf ``read=``) and the safety net is blind.
        Said once, loudly, rather than leaving the ledger silently incomplete. Only a bridge
        entered while this AMI session was up counts: a call adopted after a restart was bridged
        before callrec could hear of it."""
        if self.seen or self.warned or self.since is None:
            return
        after = self.since + SIGHT_MARGIN
        if not any(leg.bridged_at and leg.bridged_at > after for leg in call.agents):
            return
        self.warned = True
        log.error("%s ALERT the safety net sees no bridges: AMI sent no BridgeEnter although "
                  "this call was bridged; give the AMI user read=system,call in manager.conf "
                  "(calls that bypass callrec are not in the ledger meanwhile)",
                  call.log_prefix())

    def is_trunk(self, party: BridgeParty) -> bool:
        endpoint = endpoint_of(party.channel)
        return any(fnmatch.fnmatchcase(endpoint, p) for p in self.settings.trunks)

    def on_event(self, event: Any, entered_at: datetime | None = None) -> None:
        """A BridgeEnter or BridgeLeave (``entered_at``: a bridge taken on after a restart,
        ari_app/takeon.py, whose parties entered before callrec saw it)."""
        kind, bridge = event.get("Event"), str(event.get("BridgeUniqueid") or "")
        self.seen += 1
        if not bridge:
            return
        parties = self.bridges.setdefault(bridge, {})
        party = BridgeParty.from_event(event, entered_at)
        if kind == "BridgeEnter":
            self._entered(bridge, parties, party, taken_on=entered_at is not None)
        elif kind == "BridgeLeave":
            parties.pop(party.uniqueid, None)
            if bridge in self.pending:
                self._write(*self.pending.pop(bridge))
            if not parties:
                del self.bridges[bridge]
                self.written.discard(bridge)

    def _entered(self, bridge: str, parties: dict[str, BridgeParty], party: BridgeParty,
                 taken_on: bool) -> None:
        if self.app_down.pop(party.uniqueid, None) is not None:
            self.down_bridged.add(party.uniqueid)
        parties[party.uniqueid] = party
        if len(parties) != 2:
            return
        self.bridged([p.channel for p in parties.values()])
        if bridge in self.pending or bridge in self.written:
            return
        verdict = self.assess(list(parties.values()))
        if verdict is None:
            return
        if taken_on or verdict[0] is StatusReason.APP_DOWN:
            # Taken on after a restart, or an app-down call: written at once (its end
            # unknown), so that a second crash before it ends cannot lose it.
            self._write(list(parties.values()), *verdict, ended=False)
            self.written.add(bridge)
            self.kept(list(parties))
        else:
            self.pending[bridge] = (list(parties.values()), *verdict)

    def on_app_down(self, party: BridgeParty) -> None:
        """The dialplan marked this channel ``CALLREC_REASON=app_down`` (a ``VarSet``)."""
        if party.uniqueid in self.down_bridged or any(party.uniqueid in members for members
                                                      in self.bridges.values()):
            return  # its bridge is known already (an AMI reconnect's take-on)
        self.app_down.setdefault(party.uniqueid, party)

    def on_hangup(self, uniqueid: str) -> None:
        """An app-down call ended without ever being bridged: its own entry."""
        party = self.app_down.pop(uniqueid, None)
        if party is not None and not self.followed(party):
            # (Followed: a FastAGI call whose callrec died in its notice, adopted from the
            # journal on restart; its manifest says what happened.)
            self._write([party], StatusReason.APP_DOWN, Policy.OPTIONAL)

    def assess(self, parties: list[BridgeParty]) -> tuple[StatusReason, Policy] | None:
        """(reason, policy) when this pair needs a ledger entry of its own."""
        if any(p.channel.startswith("Local/") for p in parties):
            return None
        if any(self.followed(p) for p in parties):
            return None  # (an AGI call whose callrec died mid-flow, then adopted, too)
        if any(p.uniqueid in self.down_bridged for p in parties):
            return StatusReason.APP_DOWN, Policy.OPTIONAL
        internal = not any(self.is_trunk(p) for p in parties)
        if internal and self.settings.internal_policy is Policy.NEVER:
            return StatusReason.INTERNAL_CALL, Policy.NEVER
        return StatusReason.NOT_ROUTED_THROUGH_CALLREC, (self.settings.internal_policy if internal
                                              else self.settings.external_policy)

    def flush(self) -> list[str]:
        """Shutting down: write what is pending (the bridge's end is then unknown); returns
        the unique ids of their parties (not to be taken on again: ari_app/takeon.py)."""
        written = []
        for bridge in list(self.pending):
            parties, reason, policy = self.pending.pop(bridge)
            written += [p.uniqueid for p in parties]
            self._write(parties, reason, policy, ended=False)
        return written

    def _write(self, parties: list[BridgeParty], reason: StatusReason, policy: Policy,
               ended: bool = True) -> None:
        # The customer is the trunk party; in an internal call, the caller: the channel that
        # started the call (its unique id is the call's linked id), not the one it dialled.
        parties.sort(key=lambda p: (not self.is_trunk(p), p.uniqueid != p.linkedid,
                                    p.entered_at))
        first, others = parties[0], parties[1:]
        self.down_bridged.difference_update(p.uniqueid for p in parties)
        ended_at = datetime.now(UTC) if ended else None
        bridged = max(p.entered_at for p in others) if others else first.entered_at
        agents = [AgentLeg(endpoint=endpoint_of(p.channel), channel=p.channel,
                           dial_status="ANSWER", answered_at=bridged, bridged_at=bridged,
                           left_at=ended_at) for p in others]
        caller = Party(number_raw=first.number, name_raw=first.name,
                       number=normalise_number(first.number))
        call = Call.from_bridge(first.uniqueid, first.linkedid, first.channel, caller,
                                first.entered_at, policy, reason, agents, ended_at)
        level = logging.INFO if reason is StatusReason.INTERNAL_CALL else logging.WARNING
        log.log(level, "%s %s %s <-> %s without callrec: %s (policy %s)", call.log_prefix(),
                "bridge" if others else "unbridged call", first.channel,
                ", ".join(p.channel for p in others) or "-", reason, policy.value)
        self.ledger(call)
