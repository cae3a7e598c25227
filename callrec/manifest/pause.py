"""The recording's pauses (a payment's card details kept out of it): the manifest's ``pauses``.

A pause mutes the call's own MixMonitor (AMI MixMonitorMute by its ID): Asterisk goes on writing
the file with zeros in place of both directions (main/audiohook.c, audiohook_read_frame_both
clears each side's buffer when its mute flag is set, before mixing and before the stereo copies),
so the file keeps the call's timing and each pause is a silent span at ``offset_s`` ..
``end_offset_s``. The signed manifest carries them: an evidence bundle explains every gap.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from callrec.manifest.base import _Model


class PauseSource(StrEnum):
    """Who or what paused the recording."""

    KEY = "key"  # an agent's feature code (dialplan/features/agent-keys.conf)
    API = "api"  # the payment screen or CRM over callrec's control API
    DIALPLAN = "dialplan"  # a payment IVR's Gosub(callrec-pause,s,1)


class PauseEnd(StrEnum):
    """Why a pause ended."""

    RESUME = "resume"  # asked for (the key, the API, the IVR's Gosub(callrec-resume,s,1))
    AUTO = "auto"  # it reached pause.max_s
    TRANSFER = "transfer"  # a party joined by a transfer (they hear the notice)
    AGENT_CHANGED = "agent_changed"  # another agent took the call, or the agent left it
    WARNING = "warning"  # the agent's warning key: the warning says the call is recorded
    HANGUP = "hangup"  # the call ended during the pause
    RESTART = "restart"  # callrec restarted during the pause and resumed it on taking the call on


class Pause(_Model):
    """One pause of the call's recording. Offsets are places in the recording (like the
    timeline's); ``resume_proven`` says whether the recording was proven to record again
    (unmuted, its MixMonitor and file still there, the file growing) before anything said so."""

    started_at: datetime
    offset_s: float | None = None
    source: PauseSource
    by: str | None = None  # the agent, the API's caller, the IVR
    ended_at: datetime | None = None
    end_offset_s: float | None = None
    ended_by: PauseEnd | None = None
    resume_proven: bool | None = None  # None: not resumed (the call ended paused)
    detail: str | None = None

    def placed(self, start: datetime | None) -> Pause:
        """A copy with its offsets in a recording that started at ``start``."""
        def offset(at: datetime | None) -> float | None:
            if start is None or at is None:
                return None
            return max(round((at - start).total_seconds(), 3), 0.0)
        return self.model_copy(update={"offset_s": offset(self.started_at),
                                       "end_offset_s": offset(self.ended_at)})
