"""AMI over panoramisk: the MixMonitor actions and channel variables, each with a timeout.

panoramisk re-sends actions still unanswered when the connection dropped; a MixMonitor replayed
after a reconnect could start a second recording nobody verifies, so MixMonitor and
StopMixMonitor are kept out of its replay set (``forgetable_actions``): a lost reply surfaces as a
timeout here and the flow treats the recording as not started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from panoramisk import Manager

from ari_app import AriAppError
from ari_app.ami_manager import SafeManager
from ari_app.config import AmiSettings

log = logging.getLogger(__name__)

NEVER_REPLAY = ("ping", "login", "mixmonitor", "stopmixmonitor")


class AmiError(AriAppError):
    """AMI unreachable, an action timed out, or Asterisk refused it."""


class AmiRefused(AmiError):
    """Asterisk answered the action with an error (it did not do it)."""


class AmiNotConnected(AmiError):
    """The action was not sent: AMI is not connected (panoramisk is reconnecting)."""


@dataclass(frozen=True)
class Subscription:
    """The events callrec reads: their names, and the Filter expressions that make Asterisk
    send this session only those (per session: set again at every login; without them every
    VarSet and Newexten of every call would arrive). ``on_login`` runs after each login (to
    read state that events since then will keep current)."""

    names: frozenset[str]
    filters: tuple[str, ...]
    on_event: Callable[[Any], None]
    on_login: Callable[[AmiClient], Awaitable[None]] | None = None


class AmiClient:
    def __init__(self, settings: AmiSettings, subscription: Subscription | None = None) -> None:
        self.settings = settings
        self.connected = False
        self.subscription = subscription
        self._manager: Manager | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def connect(self, timeout: float = 5.0) -> None:
        self._manager = SafeManager(
            loop=asyncio.get_running_loop(), host=self.settings.host, port=self.settings.port,
            username=self.settings.user, secret=self.settings.secret.get_secret_value(),
            events="on" if self.subscription else "off", ping_delay=5, ping_interval=5,
            reconnect_timeout=1,
            forgetable_actions=NEVER_REPLAY, on_login=self._on_login,
            on_disconnect=self._on_disconnect,
        )
        if self.subscription is not None:
            self._manager.register_event("*", self._event)
        try:
            await asyncio.wait_for(self._manager.connect(), timeout)
            if self._manager.authenticated_future is None:  # closed as it was made
                raise AmiError(f"AMI {self.settings.host}:{self.settings.port}: connection "
                               "closed by the peer before the login")
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
        if self.subscription is not None:
            task = asyncio.ensure_future(self._logged_in(self.subscription))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _logged_in(self, subscription: Subscription) -> None:
        for expression in subscription.filters:
            try:
                await self.action({"Action": "Filter", "Operation": "Add",
                                   "Filter": expression})
            except AmiError as exc:
                log.warning("AMI event filter %r not set (%s): more events to read", expression,
                            exc)
        if subscription.on_login is not None:
            try:
                await subscription.on_login(self)
            except AmiError as exc:
                log.warning("AMI state not read at login: %s", exc)

    def _event(self, manager: Manager, event: Any) -> None:
        subscription = self.subscription
        if subscription is not None and event.get("Event") in subscription.names:
            try:
                subscription.on_event(event)
            except Exception:  # one bad event must not stop the next
                log.exception("AMI event %s not handled", event.get("Event"))

    async def events_of(self, fields: dict[str, str]) -> list[Any]:
        """An action whose answer is a list of events (``Agents``, ``QueueStatus``...): the
        events, without the response and the ``...Complete`` end marker."""
        reply = await self._send(fields)
        messages = reply if isinstance(reply, list) else [reply]
        return [m for m in messages if m.get("Event")
                and not str(m.get("Event")).endswith("Complete")]

    def _on_disconnect(self, manager: Manager, exc: BaseException | None) -> None:
        log.warning("AMI connection lost (%r); panoramisk reconnects", exc)
        self.connected = False

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self.connected = False

    async def _send(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        """The action's raw reply (a message, or a list for event-list actions)."""
        if self._manager is None or not self.connected:
            raise AmiNotConnected(f"AMI not connected; {fields.get('Action')} not sent")
        limit = timeout or self.settings.action_timeout_s
        try:
            return await asyncio.wait_for(self._manager.send_action(fields), limit)
        except TimeoutError as exc:
            raise AmiError(f"AMI {fields.get('Action')} timed out after {limit:.1f} s") from exc

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        reply = await self._send(fields, timeout)
        if isinstance(reply, list):
            reply = reply[0]
        if str(reply.get("Response", "")).lower() != "success":
            raise AmiRefused(f"AMI {fields.get('Action')} refused: {reply.get('Message')}")
        return reply

    async def mixmonitor(self, channel: str, file: str, options: str) -> str:
        """Start MixMonitor; its ID when the options asked for one (``i()``): the reply carries
        it (manager_mixmonitor, apps/app_mixmonitor.c), "" from versions that do not."""
        # No "Command": Asterisk would fork itself per call to run it (ari_app/closewatch.py).
        reply = await self.action({"Action": "MixMonitor", "Channel": channel, "File": file,
                                   "Options": options})
        return str(reply.get("MixMonitorID") or "")

    async def getvar(self, channel: str, variable: str) -> str:
        reply = await self.action({"Action": "Getvar", "Channel": channel,
                                   "Variable": variable})
        value = reply.get("Value")
        return "" if value in (None, "(null)") else str(value)
