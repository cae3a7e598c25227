"""Prometheus metrics of the call flow (``metrics.port``, 127.0.0.1:9470 by default).

Counted when a call's manifest is written, so every call is counted once, whatever happened to it.
``callrec_recordings_interrupted_total`` is the alert: callers were told their call is recorded and
part of it is not.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callrec.manifest import CallManifest, Policy, RecordingStatus
from callrec.metrics import serve


class CallMetrics:
    def __init__(self, calls_in_flight: Callable[[], float]) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter("callrec_calls", "Calls that left a manifest",
                             ["door", "status"], registry=r)
        self.unrecorded = Counter("callrec_unrecorded_calls", "Calls not recorded, by reason",
                                  ["reason"], registry=r)
        # Policy force and no recording: the caller was turned away (the apology, a hang-up).
        self.force_refused = Counter("callrec_force_refused_calls",
                                     "Calls under policy force turned away: not recordable",
                                     ["reason"], registry=r)
        self.interrupted = Counter("callrec_recordings_interrupted",
                                   "Recordings stopped or broken while the call was up (ALERT)",
                                   ["reason"], registry=r)
        self.notices = Counter("callrec_notices", "Notices by result",
                               ["result"], registry=r)
        self.audio_checks = Counter("callrec_audio_checks",
                                    "Answered calls' recordings by what the audio check heard",
                                    ["verdict"], registry=r)
        self.verify = Histogram("callrec_recording_verify_seconds",
                                "MixMonitor requested -> recording verified", registry=r,
                                buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2))
        self.in_flight = Gauge("callrec_calls_in_flight", "Calls callrec is following",
                               registry=r)
        self.in_flight.set_function(calls_in_flight)
        # Set once the events websocket is up and every call resynced (ari_app/resync.py):
        # what a probe waits for after a start, and an alert when it stays 0.
        self.ari_up = Gauge("callrec_ari_in_sight",
                            "1 while the ARI websocket is connected and calls are resynced",
                            registry=r)
        self.ami_up = Gauge("callrec_ami_connected",
                            "1 while AMI is connected (else no call can be recorded)", registry=r)
        self.unverified_stopped = Counter(
            "callrec_unverified_mixmonitors_stopped",
            "MixMonitors callrec started but could not prove, stopped (no notice)", registry=r)
        self.write_failures = Counter("callrec_manifest_write_failures",
                                      "Manifest writes that failed and are retried (disk full?)",
                                      registry=r)
        self.agent_actions = Counter(
            "callrec_agent_actions",
            "Agents' hot-key actions: warning, end (alerts), warning_refused, end_refused",
            ["action"], registry=r)
        self.pauses = Counter("callrec_pauses", "Recordings paused (card details), by who asked",
                              ["source"], registry=r)
        self.pauses_refused = Counter("callrec_pauses_refused",
                                      "Pause requests refused (disabled, nothing recorded...)",
                                      registry=r)
        # proven="false" is the alert: a pause ended and the recording could not be proven.
        self.pause_ends = Counter("callrec_pause_ends", "Pauses ended, by why and whether the "
                                  "recording was proven again", ["ended_by", "proven"],
                                  registry=r)
        fast = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2)
        self.pause_latency = Histogram("callrec_pause_seconds",
                                       "Pause asked -> MixMonitor muted", registry=r,
                                       buckets=fast)
        self.resume_latency = Histogram("callrec_resume_seconds",
                                        "Resume asked -> recording proven again", registry=r,
                                        buckets=fast)
        self.blind_safety_net = Gauge(
            "callrec_safety_net_blind",
            "1 once a bridged call was seen while AMI sent no bridge events", registry=r)

    def count(self, m: CallManifest) -> None:
        self.calls.labels(m.door, m.status.value).inc()
        if m.status is RecordingStatus.UNRECORDED:
            self.unrecorded.labels(m.status_reason or "unknown").inc()
            if m.policy is Policy.FORCE:
                self.force_refused.labels(m.status_reason or "unknown").inc()
        elif m.status is RecordingStatus.INTERRUPTED:
            self.interrupted.labels(m.status_reason or "unknown").inc()
        n = m.notice
        self.notices.labels("not_played" if not n.played else
                            "completed" if n.completed else "cut_short").inc()
        rec = m.recording
        if rec is not None and rec.started_at and rec.verified_at:
            self.verify.observe((rec.verified_at - rec.started_at).total_seconds())

    async def serve(self, host: str, port: int) -> web.AppRunner:
        return await serve(self.registry, host, port)
