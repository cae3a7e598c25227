"""panoramisk's Manager, with the two faults the soak found (bench/chaos.py) fixed at our seam.

1. **A connection lost as it is made never reconnects.** ``Manager.connect`` creates the
   connection in a task and only sets ``protocol.factory`` in that task's done-callback
   (``Manager.connection_made``). When the peer closes the connection before that callback runs
   (an AMI cut while it reconnects: a proxy, a firewall, Asterisk restarting),
   ``AMIProtocol.connection_lost`` calls ``self.factory.connection_lost`` on ``None``: the
   AttributeError goes to the event loop's handler, no reconnect is scheduled, the Login is
   written to a closed transport, and AMI stays down until callrec restarts (panoramisk 1.4,
   ami_protocol.py ``connection_lost``, manager.py ``connection_made``). Here such a protocol
   remembers it was lost, and the Manager treats it as a loss: reconnect after the delay.
2. **Its log names the AMI secret.** A Login it cannot send is logged with ``%r`` of the action,
   ``Secret`` included. Its records go through our logger, whose filter blanks the secret.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

_SECRET = re.compile(r"""(['"]?Secret['"]?\s*[:=]\s*)(?:'[^']*'|"[^"]*"|[^\s,}]+)""",
                     re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Blanks an AMI ``Secret`` in a record's message (and drops its args: the message is
    formatted here, once, so nothing unredacted is formatted later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET.search(message):
            record.msg, record.args = _SECRET.sub(r"\1'********'", message), None
        return True


# panoramisk logs through the logger it is given (Manager's ``log``; the protocol gets it too).
log = logging.getLogger("ari_app.panoramisk")
log.addFilter(RedactSecrets())


class _Protocol(AMIProtocol):  # type: ignore[misc]
    lost_early = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.factory is None:  # before Manager.connection_made: it will see this
            self.lost_early = self.closed = True
            return
        super().connection_lost(exc)


class SafeManager(Manager):  # type: ignore[misc]
    def __init__(self, **config: Any) -> None:
        super().__init__(protocol_factory=_Protocol, log=log, **config)

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is None:
            transport, protocol = f.result()
            if getattr(protocol, "lost_early", False) or transport.is_closing():
                transport.abort()
                self.connection_lost(None)  # reconnect after the delay, as for any loss
                return
        super().connection_made(f)
