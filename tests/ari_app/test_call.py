"""Outcome derivation and event tracking of one call (no PBX needed)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from ari_app.call import Call
from ari_app.callstate import endpoint_of
from callrec.manifest import CallManifest, EventKind, Policy, RecordingStatus, TimelineEvent
from tests.fakes import CALL_ID, proven, recorder, writing

CHANNEL = {"id": "1.1", "name": "PJSIP/trunk-00000001", "linkedid": "1.1",
           "caller": {"number": "0312", "name": "A"}, "dialplan": {"exten": "9001"}}


def call() -> Call:
    return Call.from_stasis(CHANNEL, Policy.OPTIONAL)


def dial(peer: str, status: str) -> dict[str, Any]:
    return {"type": "Dial", "caller": CHANNEL, "peer": {"name": peer}, "dialstatus": status,
            "timestamp": "2026-11-23T10:00:00.000+0000"}


def varset(name: str, value: str) -> dict[str, Any]:
    return {"type": "ChannelVarset", "channel": CHANNEL, "variable": name, "value": value,
            "timestamp": "2026-11-23T10:00:01.000+0000"}


def test_endpoint_of_channel_names() -> None:
    assert endpoint_of("PJSIP/agent-answer-0000001a") == "agent-answer"
    assert endpoint_of("Local/100@agents-00000002;1") == "100@agents"
    assert endpoint_of("SIP/x") == "x"


def test_answered_agent_is_completed_with_bridge_times() -> None:
    c = call()
    c.on_event(dial("PJSIP/agent-busy-00000002", "RINGING"))
    c.on_event(dial("PJSIP/agent-busy-00000002", "BUSY"))
    c.on_event(dial("PJSIP/agent-answer-00000003", "ANSWER"))
    c.on_event(varset("BRIDGEPEER", "PJSIP/agent-answer-00000003"))
    c.on_event(varset("BRIDGEPEER", ""))
    m = c.manifest()
    assert m.outcome == "completed"
    assert [(a.endpoint, a.dial_status) for a in m.agents] == [
        ("agent-busy", "BUSY"), ("agent-answer", "ANSWER")]
    assert m.agents[1].bridged_at is not None and m.agents[1].left_at is not None
    assert m.agents[0].bridged_at is None


def test_no_agent_vs_abandoned_vs_in_notice() -> None:
    c = call()
    c.on_event(dial("PJSIP/agent-noanswer-00000004", "NOANSWER"))
    assert c.manifest().outcome == "no_agent"
    waiting = call()
    waiting.on_event(dial("PJSIP/agent-noanswer-00000005", "CANCEL"))  # caller gave up
    assert waiting.manifest().outcome == "abandoned"
    in_notice = call()
    in_notice.notice.played, in_notice.notice.completed = True, False
    assert in_notice.manifest().outcome == "abandoned_in_notice"
    failed = call()
    failed.failed = True
    assert failed.manifest().outcome == "failed"


def test_dialplan_outcome_wins_only_when_well_formed() -> None:
    c = call()
    c.on_event(dial("PJSIP/agent-answer-00000006", "ANSWER"))
    c.on_event(varset("CALLREC_OUTCOME", "complaint"))
    m = c.manifest()
    assert (m.outcome, m.outcome_source) == ("complaint", "dialplan")
    c.on_event(varset("CALLREC_OUTCOME", "a&outcome=<x>"))
    m = c.manifest()
    assert (m.outcome, m.outcome_source) == ("completed", "derived")


def test_hangup_and_destroy_events() -> None:
    c = call()
    c.on_event({"type": "ChannelHangupRequest", "channel": CHANNEL, "cause": 16})
    assert c.hung_up.is_set() and not c.destroyed.is_set()
    c.on_event({"type": "ChannelDestroyed", "channel": CHANNEL, "cause": 17,
                "cause_txt": "User busy", "timestamp": "2026-11-23T10:00:05.000+0000"})
    m = c.manifest()
    assert (m.hangup_cause, m.hangup_cause_text) == (17, "User busy")
    assert m.ended_at is not None and m.ended_at.year == 2026


async def test_a_call_whose_asterisk_restarted_is_told_apart(tmp_path: Path) -> None:
    """Its channel ended out of sight: only an Asterisk started after the call entered took it
    down, and only a recording whose writer died is cut off."""
    gone = call()
    rec, ami = recorder(tmp_path)
    with writing(rec.paths(CALL_ID)[1]):
        gone.mark_recorded(await proven(rec, ami))
    gone.ended_unseen(gone.entered_at + timedelta(seconds=5))
    assert gone.destroyed.is_set() and gone.hung_up.is_set() and gone.pbx_restarted
    assert gone.status is RecordingStatus.RECORDED  # its file may have been closed in time
    gone.writer_died()
    assert (gone.status, gone.status_reason) == (RecordingStatus.INTERRUPTED,
                                                 "asterisk_restarted")
    blip = call()
    blip.ended_unseen(blip.entered_at - timedelta(hours=1))
    assert blip.destroyed.is_set() and not blip.pbx_restarted
    blip.writer_died()
    assert blip.status_reason == "recording_writer_died"
    unknown = call()
    unknown.ended_unseen(None)
    assert not unknown.pbx_restarted


def test_a_call_asterisk_lost_before_an_agent_answered_failed() -> None:
    """Nobody abandoned it: not abandoned_in_notice, not abandoned. A call an agent answered
    was still completed."""
    in_notice = call()
    in_notice.notice.played = True
    in_notice.ended_unseen(in_notice.entered_at + timedelta(seconds=5))
    assert in_notice.manifest().outcome == "failed"
    talking = call()
    talking.on_event(dial("PJSIP/agent-answer-00000009", "ANSWER"))
    talking.ended_unseen(talking.entered_at + timedelta(seconds=5))
    assert talking.manifest().outcome == "completed"


def test_call_ids_are_unique_and_safe() -> None:
    ids = {call().call_id for _ in range(200)}
    assert len(ids) == 200
    assert all(i.replace("-", "").isalnum() for i in ids)


def test_snapshot_catches_up_after_lost_events() -> None:
    c = call()
    c.apply_snapshot({"DIALEDPEERNAME": "PJSIP/agent-answer-00000007", "DIALSTATUS": "",
                      "BRIDGEPEER": "PJSIP/agent-answer-00000007", "CALLREC_OUTCOME": ""})
    m = c.manifest()
    assert m.outcome == "completed"
    assert m.agents[0].endpoint == "agent-answer" and m.agents[0].bridged_at is not None
    c.on_event(varset("BRIDGEPEER", ""))
    assert c.manifest().agents[0].left_at is not None
    busy = call()
    busy.apply_snapshot({"DIALEDPEERNAME": "PJSIP/agent-busy-00000008", "DIALSTATUS": "BUSY"})
    assert busy.manifest().outcome == "no_agent"


def test_restore_from_journal_keeps_what_was_known() -> None:
    c = call()
    c.on_event(dial("PJSIP/agent-answer-00000009", "ANSWER"))
    c.on_event(varset("CALLREC_OUTCOME", "complaint"))
    c.notice.played = c.notice.completed = True
    restored = Call.restore(c.manifest(), None)
    assert restored.manifest() == c.manifest()


def test_a_journal_entry_restores_the_same_call_with_only_the_agents_actions_kept() -> None:
    c = call()
    c.on_event(dial("PJSIP/agent-answer-00000009", "ANSWER"))
    c.on_event(varset("BRIDGEPEER", "PJSIP/agent-answer-00000009"))
    c.notice.played = c.notice.completed = True
    c.notice.started_at = c.notice.ended_at = c.entered_at
    c.events.append(TimelineEvent(at=c.entered_at, kind=EventKind.WARNING_PLAYED,
                                  by="agent-answer"))
    entry = c.journal_entry()
    assert [e.kind for e in entry.timeline] == [EventKind.WARNING_PLAYED]
    full = c.manifest()
    assert len(full.timeline) > 1  # notice, agent answered and bridged, the warning
    assert Call.restore(entry, None).manifest() == full


def test_a_lone_surrogate_in_the_caller_id_cannot_stop_the_manifest(tmp_path: Path) -> None:
    """JSON may carry a lone ``\\udXXX`` escape: not encodable as UTF-8. The manifest is still
    written, the character replaced by U+FFFD, the rest of the raw value kept."""
    channel = {**CHANNEL, "caller": json.loads('{"number": "03\\ud800", "name": "A\\udfffB"}')}
    m = Call.from_stasis(channel, Policy.OPTIONAL).manifest()
    path = m.write_atomic(tmp_path)
    back = CallManifest.read(path)
    assert (back.caller.number_raw, back.caller.name_raw) == ("03\ufffd", "A\ufffdB")
    assert back.caller.number == "03"


async def test_only_our_playback_finishing_ends_the_notice() -> None:
    """A channel taken on after a restart may still be finishing the earlier run's notice:
    that playback's end must not count as the new notice heard in full."""
    c = call()
    c.playback_id = f"{c.call_id}-notice"
    c.playback_done = asyncio.get_running_loop().create_future()
    def finished(playback_id: str) -> dict[str, Any]:
        return {"type": "PlaybackFinished", "playback": {
            "id": playback_id, "state": "done", "target_uri": "channel:1.1"}}

    c.on_event(finished("20261123T000000Z-000000000000-notice"))
    assert not c.playback_done.done()
    c.on_event(finished(c.playback_id))
    assert c.playback_done.done() and c.playback_done.result() == "done"


def test_no_module_but_the_call_itself_changes_a_calls_state() -> None:
    """A call's state changes through its own methods (mark_recorded, follow_plan, end...):
    no other module of the call flow assigns to one or appends to its lists."""
    import ast

    from tests.helpers import REPO

    def is_call(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("call", "found", "host")) or (
            isinstance(node, ast.Attribute) and node.attr == "call")

    found = []
    for path in sorted((REPO / "ari_app").glob("*.py")):
        if path.name == "call.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
            for target in targets:
                for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(t, ast.Attribute) and is_call(t.value):
                        found.append(f"{path.name}:{t.lineno} {t.attr} =")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("append", "extend", "insert", "remove", "clear") and \
                    isinstance(node.func.value, ast.Attribute) and is_call(node.func.value.value):
                found.append(f"{path.name}:{node.lineno} {node.func.value.attr}.{node.func.attr}")
    assert found == []
