"""Playing a sound to one party of a call the dialplan has bridged (not in Stasis): whispered
into their channel through an ARI snoop channel.

A channel in a dialplan bridge (Queue, Dial) is not in the application: ARI can play to it only
through a snoop channel (``POST /channels/{id}/snoop``, ``whisper=out``: what the snoop plays is
heard by that channel's party only). The agent's refusal tone (ari_app/hotkeys.py) and the
caller's pause prompts from the control API or a timer (ari_app/pause.py) go this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime

from ari_app.announce import PlayResult
from ari_app.ari import AriClient, AriError, AriHttpError

log = logging.getLogger(__name__)

TONE_ARGS = "callrec-tone"  # Stasis args of the snoop channels this module makes (not calls)
SNOOP_START_S = 2.0  # how long a snoop channel may take to enter Stasis
POLL_S = 0.05  # how often a playback's end is looked for


class Snoops:
    """Snoop channels of ours, each until Asterisk puts it in Stasis.

    ``POST /channels/{id}/snoop`` answers before the snoop channel is in the application: its
    own thread enters Stasis (res/res_stasis_snoop.c, ``snoop_stasis_thread``, started detached),
    and playing to it before its StasisStart fails with 409 "Channel not in Stasis application".
    The id is chosen by us (``snoopId``) so the wait is registered before the request.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[None]] = {}

    def expect(self) -> tuple[str, asyncio.Future[None]]:
        snoop_id = f"callrec-tone-{uuid.uuid4().hex}"
        started = self._waiting[snoop_id] = asyncio.get_running_loop().create_future()
        return snoop_id, started

    def started(self, channel_id: str) -> None:
        """A StasisStart with TONE_ARGS (ari_app/stasis.py)."""
        waiter = self._waiting.pop(channel_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def forget(self, snoop_id: str) -> None:
        self._waiting.pop(snoop_id, None)


class Whisper:
    def __init__(self, ari: AriClient, snoops: Snoops) -> None:
        self.ari, self.snoops = ari, snoops

    async def play(self, channel: str, media: str, language: str | None = None,
                   max_s: float = 60.0) -> PlayResult:
        """Play ``media`` to the party on ``channel`` (its name) and wait for its end. Raises
        AriError (the channel is gone, ARI refused, the snoop did not start)."""
        snoop_id, started = self.snoops.expect()
        try:
            found = [c for c in await self.ari.request("GET", "/channels")
                     if c.get("name") == channel]
            if not found:
                raise AriError(f"{channel} is gone")
            await self.ari.request(
                "POST", f"/channels/{found[0]['id']}/snoop", app=self.ari.settings.app,
                appArgs=TONE_ARGS, spy="none", whisper="out", snoopId=snoop_id)
            try:
                await asyncio.wait_for(started, SNOOP_START_S)
            except TimeoutError as exc:
                raise AriError(f"snoop on {channel} did not start") from exc
            return await self._played(snoop_id, media, language, max_s)
        finally:
            self.snoops.forget(snoop_id)
            with contextlib.suppress(AriError):  # never created, or ARI gone: nothing to end
                await self.ari.hangup(snoop_id)

    async def _played(self, snoop_id: str, media: str, language: str | None,
                      max_s: float) -> PlayResult:
        playback_id = f"callrec-whisper-{uuid.uuid4().hex}"
        params = {"media": media, "playbackId": playback_id}
        if language:
            params["lang"] = language
        started_at = datetime.now(UTC)
        await self.ari.request("POST", f"/channels/{snoop_id}/play", **params)
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            try:
                await self.ari.request("GET", f"/playbacks/{playback_id}")
            except AriHttpError as exc:
                if exc.status != 404:
                    raise
                # Gone: it finished (or its channel did, which ends the playback too).
                return PlayResult(started_at, datetime.now(UTC), completed=True)
        return PlayResult(started_at, datetime.now(UTC), completed=False)
