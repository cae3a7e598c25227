"""The webhooks' Prometheus metrics, in the registry of the service that runs the sender."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = self.registry = registry
        # result: delivered (2xx), failed (an attempt, retried), expired (moved to dead/)
        self.deliveries = Counter("callrec_webhook_deliveries",
                                  "Webhook delivery attempts by endpoint and result",
                                  ["endpoint", "result"], registry=r)
        self.pending = Gauge("callrec_webhook_pending_events",
                             "Events in the outbox not yet taken by the endpoint",
                             ["endpoint"], registry=r)
        self.oldest = Gauge("callrec_webhook_oldest_pending_seconds",
                            "Age of the endpoint's oldest pending event", ["endpoint"],
                            registry=r)
        self.sender = Gauge("callrec_webhook_sender",
                            "1 while this process delivers the host's webhooks", registry=r)

    def endpoint(self, name: str) -> None:
        """Every series of an endpoint from the start (a rate over a series that appears only
        with its first failure misses that failure)."""
        for result in ("delivered", "failed", "expired"):
            self.deliveries.labels(name, result)
        self.pending.labels(name)
        self.oldest.labels(name)
