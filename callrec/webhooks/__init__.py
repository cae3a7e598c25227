"""Recording events for other systems, as Standard Webhooks (https://www.standardwebhooks.com/).

    a service emits an event -> the durable outbox (one file per endpoint, fsync'd)
    -> one sender per host delivers it, signed, retried with backoff -> the file goes

Events: ``call.archived`` (the uploader, once the call's objects are verified in S3),
``call.unrecorded`` and ``recording.interrupted`` (the call flow, when the call's manifest is
written), ``call.flagged`` (an agent's warning or end of an abusive call, at once).

Every process that emits also runs a sender, and a lock file lets one of them deliver for the
whole host (callrec/webhooks/sender.py): events of one call reach an endpoint in the order they
were emitted, whichever service emitted them. Delivery is at least once: an event redelivered
after a crash keeps its ``webhook-id``, which is how a receiver recognises it.
"""

from __future__ import annotations

from callrec import CallrecError


class WebhookError(CallrecError):
    """A webhook setting, key or outbox that cannot be used."""
