"""Who the agent on a leg is: a person, not a channel.

In order: the agent directory in config (``[agents]``: an app_agent_pool agent id, the extension of
a Local member such as ``Local/1001@from-queue/n``, the phone's endpoint, or the leg's endpoint ->
agent id and name); else the app_agent_pool agent id (ari_app/queues.py), named by its queue
member name; else the queue member name; else the endpoint behind a Local channel, or the leg's
own endpoint. The manifest keeps the raw facts (channel, interface, device) beside the result.
"""

from __future__ import annotations

from collections.abc import Mapping

from ari_app.config import AgentEntry
from callrec.manifest import AgentLeg


def local_extension(interface: str | None) -> str:
    """``Local/1001@from-queue/n`` -> ``1001``."""
    if not interface or not interface.startswith("Local/"):
        return ""
    return interface.removeprefix("Local/").partition("@")[0]


def identify(legs: list[AgentLeg], directory: Mapping[str, AgentEntry]) -> None:
    for leg in legs:
        keys = (leg.agent_id, local_extension(leg.interface), leg.device, leg.endpoint)
        entry = next((directory[k] for k in keys if k and k in directory), None)
        if entry is not None:
            leg.agent_id, leg.agent_name = entry.id, entry.name or leg.member_name
        elif leg.agent_id:
            leg.agent_name = leg.agent_name or leg.member_name
        elif leg.member_name:
            leg.agent_id = leg.agent_name = leg.member_name
        else:
            leg.agent_id = leg.device or leg.endpoint
