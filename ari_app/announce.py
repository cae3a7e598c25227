"""The one way callrec tells a party that the call is recorded.

Every prompt that says so (the notice, the notice to a party a transfer brings in, any later
warning) goes through ``Announcer.announce``: it takes the ``VerifiedRecording`` that only
Recorder's rule makes, and checks right before the prompt is sent that the recording still runs.
Without the proof there is nothing to call; with a recording that stopped since, nothing is said.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from ari_app import AriAppError
from ari_app.config import Route
from ari_app.recorder import Recorder, VerifiedRecording
from callrec.manifest import EventKind, Notice, TimelineEvent

if TYPE_CHECKING:
    from ari_app.call import Call

log = logging.getLogger(__name__)


@dataclass
class PlayResult:
    started_at: datetime
    ended_at: datetime
    completed: bool  # the prompt ran to its end with the caller still there


class Speaker(Protocol):
    """Something that plays a prompt to the caller: the door, or a whisper into a bridged
    caller's channel (ari_app/whisper.py)."""

    async def play(self, prompt: str, language: str) -> PlayResult: ...


class Door(Speaker, Protocol):
    """What the flow needs from the door a call came through."""

    async def answer(self) -> None: ...

    async def follow(self) -> None:
        """Arrange to keep receiving the channel's events until it is destroyed."""

    async def set_var(self, name: str, value: str) -> None: ...

    async def hangup(self) -> None: ...

    async def proceed(self, route: Route | None) -> None: ...


class NotRecording(AriAppError):
    """The proven recording has stopped since: the prompt was not played."""


class Announcer:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def announce(self, door: Speaker, proof: VerifiedRecording, prompt: str,
                 language: str) -> Awaitable[Notice]:
        """Check now, play when awaited (nothing runs between the check and the play request).
        Raises NotRecording at once, before anything is sent, if the recording stopped."""
        if not isinstance(proof, VerifiedRecording):
            raise TypeError("a recorded-call prompt needs a VerifiedRecording")
        if not self.recorder.still_running(proof):
            raise NotRecording(f"{proof.file.local_path.name} is closed: {prompt} not played")
        return self._play(door, prompt, language)

    async def warn(self, call: Call, door: Speaker, prompt: str, language: str,
                   by: str | None) -> TimelineEvent:
        """A recorded warning that repeats the call is recorded (an agent's key, a marked
        caller's treatment): played through the gate above with the call's proof, else not at
        all. Either way it is on the call's timeline, which this returns."""
        proof = call.proof
        try:
            if proof is None:
                raise NotRecording(f"no verified recording ({call.status.value})")
            playing = self.announce(door, proof, prompt, language)
        except NotRecording as exc:
            event = TimelineEvent(at=datetime.now(UTC), kind=EventKind.WARNING_REFUSED, by=by,
                                  detail=str(exc))
        else:
            heard = await playing
            event = TimelineEvent(
                at=heard.started_at or datetime.now(UTC), kind=EventKind.WARNING_PLAYED, by=by,
                detail=f"{prompt} ({language}), "
                       f"{'heard in full' if heard.completed else 'cut short'}")
        call.add_event(event)
        return event

    @staticmethod
    async def _play(door: Speaker, prompt: str, language: str) -> Notice:
        result = await door.play(prompt, language)
        # Only after the playback ran: a refused play request (caller already gone) is no notice.
        return Notice(prompt=prompt, language=language, played=True,
                      started_at=result.started_at, ended_at=result.ended_at,
                      completed=result.completed)
