"""Prometheus metrics of the uploader, served on a loopback port (``upload.metrics_port``)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from callrec.metrics import serve


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.backlog = Gauge("callrec_upload_backlog_calls",
                             "Calls in the spool waiting to be archived", registry=r)
        self.backlog_bytes = Gauge("callrec_upload_backlog_bytes",
                                   "Bytes (recordings + manifests) waiting", registry=r)
        self.oldest = Gauge("callrec_upload_oldest_pending_seconds",
                            "Age of the oldest waiting manifest", registry=r)
        self.latency = Histogram(
            "callrec_upload_hangup_to_verified_seconds",
            "From the call's end to its verified objects in S3", registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400))
        self.archived = Counter("callrec_upload_archived_calls",
                                "Calls archived and verified", registry=r)
        self.uploaded = Counter("callrec_upload_uploaded_bytes", "Bytes uploaded", registry=r)
        self.failures = Counter("callrec_upload_failures", "Failed attempts, retried",
                                ["reason"], registry=r)
        self.journal_errors = Counter("callrec_upload_journal_errors",
                                      "Journal writes that failed (e.g. a full disk)", registry=r)
        self.quarantined = Counter("callrec_upload_quarantined_calls",
                                   "Calls set aside for a human", ["reason"], registry=r)
        self.checkpoint = Gauge("callrec_upload_last_checkpoint_timestamp_seconds",
                                "When this host's chain was last checkpointed in the bucket "
                                "(Unix time)", registry=r)
        self.checkpoint_failures = Counter("callrec_upload_checkpoint_failures",
                                           "Checkpoints not written (retried next interval)",
                                           registry=r)

        self.transcode = Histogram(
            "callrec_upload_transcode_seconds",
            "Making and checking one recording's archive format (FLAC, Opus)", ["format"],
            registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
        self.transcode_failures = Counter(
            "callrec_upload_transcode_failures",
            "Transcodes that failed or did not check: the WAV was archived instead",
            ["format"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(self, host: str, port: int) -> web.AppRunner:
        return await serve(self.registry, host, port)
