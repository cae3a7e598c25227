"""Take-on after a restart or an AMI reconnect, without a PBX: what is up is taken on once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from ari_app.ami import AmiClient
from ari_app.bridges import BridgeParty, BridgeWatch
from ari_app.call import Call
from ari_app.config import BridgeSettings
from ari_app.ending import Sight
from ari_app.takeon import TakeOn
from tests.fakes import FakeAmi

TRUNK = ("1.1", "1.1", "PJSIP/trunk-00000001")
AGENT = ("1.2", "1.1", "PJSIP/agent-answer-00000002")


def shown(party: tuple[str, str, str], bridge: str = "b1") -> dict[str, Any]:
    """One CoreShowChannel event (manager_channels.c: action_coreshowchannels)."""
    uniqueid, linkedid, channel = party
    return {"Event": "CoreShowChannel", "Uniqueid": uniqueid, "Linkedid": linkedid,
            "Channel": channel, "CallerIDNum": "0312345678", "CallerIDName": "<unknown>",
            "BridgeId": bridge, "Duration": "00:00:05"}


class Run:
    """callrec's safety net and take-on over one spool: a new ``Run`` is a restart."""

    def __init__(self, spool: Path, written: list[Call], app_down: bool = False) -> None:
        self.watch = BridgeWatch(BridgeSettings(), lambda party: False, written.append,
                                 kept=lambda uniqueids: self.takeon.remember(uniqueids))
        self.takeon = TakeOn(self.watch, Sight(), spool)
        self.ami = cast(AmiClient, FakeAmi({"CALLREC_REASON": "app_down"} if app_down else {}))

    def take_on(self, channels: list[dict[str, Any]]) -> tuple[int, int]:
        return asyncio.run(self.takeon.take_on(self.ami, channels))


def test_a_bridge_taken_on_is_written_once_across_a_kill(tmp_path: Path) -> None:
    written: list[Call] = []
    up = [shown(TRUNK), shown(AGENT)]
    assert Run(tmp_path, written).take_on(up) == (1, 0)
    [call] = written
    assert call.status_reason == "not_routed_through_callrec" and call.ended_at is None
    # kill -9, restart: the same bridge is still up and already has its entry.
    assert Run(tmp_path, written).take_on(up) == (0, 0)
    assert len(written) == 1


def test_the_written_set_forgets_channels_that_are_gone(tmp_path: Path) -> None:
    written: list[Call] = []
    Run(tmp_path, written).take_on([shown(TRUNK), shown(AGENT)])
    assert (tmp_path / ".bridges-written").exists()
    Run(tmp_path, written).take_on([])
    assert not (tmp_path / ".bridges-written").exists()
    # The same unique ids on a later bridge (they never repeat in Asterisk, but a pruned set
    # must not hide anything): taken on again.
    assert Run(tmp_path, written).take_on([shown(TRUNK, "b2"), shown(AGENT, "b2")]) == (1, 0)
    assert len(written) == 2


def test_an_app_down_call_in_a_known_bridge_is_not_taken_on_again(tmp_path: Path) -> None:
    written: list[Call] = []
    run = Run(tmp_path, written, app_down=True)
    run.watch.on_app_down(BridgeParty.from_event({"Uniqueid": TRUNK[0], "Linkedid": TRUNK[1],
                                                  "Channel": TRUNK[2]}))
    for party in (TRUNK, AGENT):
        run.watch.on_event({"Event": "BridgeEnter", "BridgeUniqueid": "b1", "Uniqueid": party[0],
                            "Linkedid": party[1], "Channel": party[2]})
    [call] = written
    assert call.status_reason == "app_down"
    # AMI reconnects mid-call: the take-on sees the same channels and marks.
    assert run.take_on([shown(TRUNK), shown(AGENT)]) == (0, 0)
    assert run.watch.app_down == {}
    for party in (TRUNK, AGENT):
        run.watch.on_event({"Event": "BridgeLeave", "BridgeUniqueid": "b1", "Uniqueid": party[0],
                            "Linkedid": party[1], "Channel": party[2]})
        run.watch.on_hangup(party[0])
    assert len(written) == 1

