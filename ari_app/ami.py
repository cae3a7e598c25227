"""AMI over panoramisk: the MixMonitor actions and channel variables, each with a timeout.

panoramisk re-sends actions still unanswered when the connection dropped; a MixMonitor replayed
after a reconnect could start a second recording nobody verifies, so MixMonitor and
StopMixMonitor are kept out of its replay set (``forgetable_actions``): a lost reply surfaces as a
timeout here and the flow treats the recording as not started.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from panoramisk import Manager

from ari_app import AriAppError
from ari_app.config import AmiSettings

log = logging.getLogger(__name__)

NEVER_REPLAY = ("ping", "login", "mixmonitor", "stopmixmonitor")


class AmiError(AriAppError):
    """AMI unreachable, an action timed out, or Asterisk refused it."""


class AmiClient:
    def __init__(self, settings: AmiSettings) -> None:
        self.settings = settings
        self.connected = False
        self._manager: Manager | None = None

    async def connect(self, timeout: float = 5.0) -> None:
        self._manager = Manager(
            loop=asyncio.get_running_loop(), host=self.settings.host, port=self.settings.port,
            username=self.settings.user, secret=self.settings.secret.get_secret_value(),
            events="off", ping_delay=5, ping_interval=5, reconnect_timeout=1,
            forgetable_actions=NEVER_REPLAY, on_login=self._on_login,
            on_disconnect=self._on_disconnect,
        )
        try:
            await asyncio.wait_for(self._manager.connect(), timeout)
            if self._manager.authenticated_future is not None:
                await asyncio.wait_for(self._manager.authenticated_future, timeout)
        except (OSError, TimeoutError) as exc:
            raise AmiError(f"AMI {self.settings.host}:{self.settings.port}: {exc!r}") from exc
        if not self._manager.authenticated:
            raise AmiError("AMI login refused (check user and secret)")
        self.connected = True

    def _on_login(self, manager: Manager) -> None:
        if not self.connected:
            log.info("AMI logged in again")
        self.connected = True

    def _on_disconnect(self, manager: Manager, exc: BaseException | None) -> None:
        log.warning("AMI connection lost (%r); panoramisk reconnects", exc)
        self.connected = False

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self.connected = False

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        if self._manager is None or not self.connected:
            raise AmiError(f"AMI not connected; {fields.get('Action')} not sent")
        limit = timeout or self.settings.action_timeout_s
        try:
            reply = await asyncio.wait_for(self._manager.send_action(fields), limit)
        except TimeoutError as exc:
            raise AmiError(f"AMI {fields.get('Action')} timed out after {limit:.1f} s") from exc
        if isinstance(reply, list):
            reply = reply[0]
        if str(reply.get("Response", "")).lower() != "success":
            raise AmiError(f"AMI {fields.get('Action')} refused: {reply.get('Message')}")
        return reply

    async def mixmonitor(self, channel: str, file: str, options: str) -> None:
        # No "Command": Asterisk would fork itself per call to run it (ari_app/closewatch.py).
        await self.action({"Action": "MixMonitor", "Channel": channel, "File": file,
                           "Options": options})

    async def getvar(self, channel: str, variable: str) -> str:
        reply = await self.action({"Action": "Getvar", "Channel": channel,
                                   "Variable": variable})
        value = reply.get("Value")
        return "" if value in (None, "(null)") else str(value)
