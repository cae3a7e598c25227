"""After a (re)start, or an AMI reconnect: take on what went on while callrec could not see.

The safety net (ari_app/bridges.py) follows bridges from their ``BridgeEnter`` and app-down
calls from their ``VarSet``; events sent while callrec was down (a kill -9, a restart, AMI
lost) are gone. So at each AMI login callrec lists the channels that are up
(``CoreShowChannels``: unique id, linked id, bridge, duration), asks each trunk channel whether
the dialplan sent it down its app-down path (``Getvar CALLREC_REASON``), and hands the watch
every two-party bridge it does not know yet and every app-down call not yet bridged. Their
entries are then written as usual, when the bridge or the call ends. What started and ended
entirely while callrec was down leaves no channel to find: ``callrec reconcile`` finds those
from Asterisk's own CDRs.

It waits until ARI has resynced (calls adopted from the journal are known), so that a bridge of
a call callrec follows is never mistaken for one that bypassed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ari_app.ami import AmiClient, AmiError
from ari_app.bridges import BridgeParty, BridgeWatch
from ari_app.ending import Sight

log = logging.getLogger(__name__)
RESYNC_WAIT_S = 30.0


class TakeOn:
    def __init__(self, bridges: BridgeWatch, sight: Sight, spool: Path) -> None:
        self.bridges, self.sight = bridges, sight
        # The parties of bridges whose entry is written with their end unknown: at once (taken
        # on, app-down: BridgeWatch.kept) or by a graceful stop (BridgeWatch.flush). Taken on
        # again after a restart they would get a second entry. Kept in the spool, so a kill -9
        # does not forget them; pruned at each take-on to the channels still up.
        self.written = spool / ".bridges-written"

    def remember(self, uniqueids: list[str]) -> None:
        if uniqueids:
            self._store(self._already_written() | set(uniqueids))

    def _already_written(self) -> set[str]:
        try:
            found = json.loads(self.written.read_text())
        except (OSError, ValueError):
            return set()
        return {str(u) for u in found} if isinstance(found, list) else set()

    def _store(self, uniqueids: set[str]) -> None:
        tmp = self.written.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            if not uniqueids:
                self.written.unlink(missing_ok=True)
                return
            tmp.write_text(json.dumps(sorted(uniqueids)))
            tmp.replace(self.written)  # a crash mid-write leaves the old set, never half of one

    async def on_login(self, ami: AmiClient) -> None:
        try:
            await asyncio.wait_for(self.sight.in_sight.wait(), RESYNC_WAIT_S)
        except TimeoutError:
            log.warning("take-on: ARI not resynced within %.0f s; bridges up now are taken on "
                        "anyway", RESYNC_WAIT_S)
        channels = await ami.events_of({"Action": "CoreShowChannels"})
        taken = await self.take_on(ami, channels)
        if any(taken):
            log.warning("take-on: %d bridge(s) and %d app-down call(s) were up without callrec "
                        "watching; they get their ledger entries when they end", *taken)

    async def take_on(self, ami: AmiClient, channels: list[Any]) -> tuple[int, int]:
        now = datetime.now(UTC)
        parties: dict[str, BridgeParty] = {}
        bridged: dict[str, list[BridgeParty]] = defaultdict(list)
        for event in channels:
            party = BridgeParty.from_event(event, now - _duration(event.get("Duration")))
            parties[party.uniqueid] = party
            bridge = str(event.get("BridgeId") or "")
            if bridge:
                bridged[bridge].append(party)
        written = self._already_written() & set(parties)
        self._store(written)
        known = set(self.bridges.bridges)
        old = {b for b, members in bridged.items()
               if b in known or written & {p.uniqueid for p in members}}
        skip = written | {p.uniqueid for b in old for p in bridged[b]}
        for party in parties.values():
            if party.uniqueid in skip:
                continue  # its entry is written, or its bridge is watched already
            if self.bridges.is_trunk(party) and await _app_down(ami, party.channel):
                self.bridges.on_app_down(party)
        new_bridges = 0
        for bridge, members in bridged.items():
            if bridge in old or len(members) != 2:
                continue
            new_bridges += 1
            for party in members:
                self.bridges.on_event({"Event": "BridgeEnter", "BridgeUniqueid": bridge,
                                       "Uniqueid": party.uniqueid, "Linkedid": party.linkedid,
                                       "Channel": party.channel, "CallerIDNum": party.number,
                                       "CallerIDName": party.name}, party.entered_at)
        return new_bridges, len(self.bridges.app_down)


async def _app_down(ami: AmiClient, channel: str) -> bool:
    try:
        return await ami.getvar(channel, "CALLREC_REASON") == "app_down"
    except AmiError:  # hung up meanwhile
        return False


def _duration(text: object) -> timedelta:
    """``Duration: HH:MM:SS`` of CoreShowChannel."""
    try:
        h, m, s = (int(x) for x in str(text).split(":"))
    except ValueError:
        return timedelta(0)
    return timedelta(hours=h, minutes=m, seconds=s)
