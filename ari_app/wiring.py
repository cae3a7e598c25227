"""The call-flow service's parts, made and connected in one place (the composition root).

Each part gets its collaborators passed in; nothing below builds another part itself, so a test
can put a fake in any place (tests/fakes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ari_app.agents import identify
from ari_app.agi import AgiServer
from ari_app.agi_calls import AgiCalls
from ari_app.alerts import Alerts
from ari_app.ami import AmiClient, Subscription
from ari_app.ari import AriClient
from ari_app.bridges import BridgeParty, BridgeWatch
from ari_app.call import Call
from ari_app.closewatch import CloseWatch
from ari_app.config import AriAppSettings
from ari_app.control import ControlApi
from ari_app.ending import Ending, JournalBatch, Sight
from ari_app.flow import Flow
from ari_app.hotkeys import AgentKeys
from ari_app.journal import InflightJournal
from ari_app.marked import MarkedCallers
from ari_app.metrics import CallMetrics
from ari_app.pause import Pauses
from ari_app.queues import EVENTS, FILTERS, RouteWatch
from ari_app.recorder import Recorder
from ari_app.resync import Resync
from ari_app.stasis import StasisApp, wanted
from ari_app.takeon import TakeOn
from ari_app.whisper import Whisper
from callrec.evidence.chain import SpoolWriter
from callrec.lifecycle import Tasks
from callrec.s3.marks import MarkStore
from callrec.s3.settings import RetentionSettings
from callrec.s3.store import Store
from callrec.webhooks.hub import Webhooks


@dataclass
class Parts:
    settings: AriAppSettings
    ari: AriClient
    ami: AmiClient
    recorder: Recorder
    flow: Flow
    journal: JournalBatch
    sight: Sight
    app: StasisApp
    bridges: BridgeWatch
    resync: Resync
    agi: AgiServer
    metrics: CallMetrics
    alerts: Alerts
    webhooks: Webhooks
    marked: MarkedCallers
    call_tasks: Tasks
    wanted: Callable[[str], bool]
    writer: SpoolWriter
    takeon: TakeOn
    pauses: Pauses
    control: ControlApi


def build(settings: AriAppSettings) -> Parts:
    calls: dict[str, Call] = {}  # StasisApp's, by channel id (the bridge watch reads it too)
    routes = RouteWatch(calls, lambda call: journal.queue(call) if call.journaled else None)
    bridges = BridgeWatch(settings.bridges, lambda party: _followed(calls, party),
                          lambda call: ending.ledger(call), routes.on_bridged,
                          lambda uniqueids: takeon.remember(uniqueids))
    ari = AriClient(settings.ari)
    sight = Sight()
    takeon = TakeOn(bridges, sight, settings.spool.local)
    ami = AmiClient(settings.ami, _subscription(settings, bridges, routes, takeon))
    metrics = CallMetrics(lambda: len(calls))
    metrics.ami_up.set_function(lambda: float(ami.connected))
    metrics.ari_up.set_function(lambda: float(sight.in_sight.is_set()))
    recorder = Recorder(ami, settings.spool, settings.notice.verify_timeout_s,
                        CloseWatch(settings.spool.local), metrics.unverified_stopped.inc,
                        settings.recording)
    languages: dict[str, set[str]] = {}
    marked = MarkedCallers(settings.marks, MarkStore(Store(settings.s3), RetentionSettings())
                           if settings.marks.enabled else None, settings.numbering)
    flow = Flow(settings, ami, recorder, languages, marked if settings.marks.enabled else None)
    journal = JournalBatch(InflightJournal(settings.spool.local))
    call_tasks = Tasks()

    def check_sight(call: Call) -> None:
        if settings.bridges.watch and call.door != "none" and ami.connected:
            bridges.check_sight(call)
            metrics.blind_safety_net.set(float(bridges.warned))

    def forget(call: Call) -> None:  # its events go nowhere any more, its pause timer goes
        app.forget(call)
        pauses.ended(call)

    writer = SpoolWriter(settings.spool.local, settings.evidence)
    webhooks = Webhooks(settings.webhooks, metrics.registry)
    alerts = Alerts(webhooks, call_tasks, metrics.agent_actions)
    ending = Ending(writer, settings.notice, recorder, journal, metrics, sight,
                    call_tasks, forget=forget, check_sight=check_sight,
                    identify=lambda call: identify(call.agents, settings.agents),
                    announce=alerts.call_ended)
    app = StasisApp(ari, flow, ending, calls)
    whisper = Whisper(ari, app.snoops)
    pauses = Pauses(settings, ami, recorder, flow.announcer, whisper, metrics, call_tasks,
                    journal.save, alerts.alert)
    resync = Resync(ari, app, recorder, ending, settings.notice, languages,
                    (settings.marks.refusal_prompt,) if settings.marks.enabled else (),
                    pauses.after_restart)
    app.agents_changed = pauses.agents_changed
    keys = AgentKeys(settings.agent_keys, flow.announcer, ari, alerts,
                     lambda legs: identify(legs, settings.agents), whisper, pauses)
    agi = AgiServer(settings.agi.host, settings.agi.port,
                    AgiCalls(app, flow, ari, ending, keys, pauses))
    return Parts(settings, ari, ami, recorder, flow, journal, sight, app, bridges, resync, agi,
                 metrics, alerts, webhooks, marked, call_tasks, wanted, writer, takeon, pauses,
                 ControlApi(settings.api, calls, pauses))


def _subscription(settings: AriAppSettings, bridges: BridgeWatch, routes: RouteWatch,
                  takeon: TakeOn) -> Subscription:
    """The AMI events callrec reads: the bridges of the safety net and the app-down calls
    (when on), and the queue, agent and parking events that say who took a call."""
    watch = settings.bridges.watch
    bridge_events = ("BridgeEnter", "BridgeLeave") if watch else ()
    # VarSet of CALLREC_REASON only (the filter matches that line), and every Hangup. A legacy
    # filter is a regex over the whole event (main/manager.c): "Event: Hangup" alone also let
    # every HangupRequest and SoftHangupRequest through.
    down_filters = ("Variable: CALLREC_REASON", "Event: Hangup[[:space:]]") if watch else ()

    def on_event(event: Any) -> None:
        kind = event.get("Event")
        if kind in bridge_events:
            bridges.on_event(event)
        elif kind == "VarSet":
            if event.get("Variable") == "CALLREC_REASON" and event.get("Value") == "app_down":
                bridges.on_app_down(BridgeParty.from_event(event))
        elif kind == "Hangup":
            bridges.on_hangup(str(event.get("Uniqueid") or ""))
        else:
            routes.on_event(event)

    async def on_login(ami: AmiClient) -> None:
        bridges.logged_in(datetime.now(UTC))
        for event in await ami.events_of({"Action": "Agents"}):
            routes.on_event(event)
        if watch:
            await takeon.on_login(ami)

    names = EVENTS | set(bridge_events) | ({"VarSet", "Hangup"} if watch else set())
    return Subscription(names, FILTERS + tuple(f"Event: {name}" for name in bridge_events)
                        + down_filters, on_event, on_login)


def _followed(calls: dict[str, Call], party: BridgeParty) -> bool:
    """A bridge party belongs to a call callrec handles (its channel, or linked to it)."""
    return party.uniqueid in calls or party.linkedid in calls or any(
        c.linkedid == party.linkedid for c in calls.values())
