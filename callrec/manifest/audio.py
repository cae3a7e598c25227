"""The recording part of the manifest: the file, its channels, the audio check and the object
the archive holds (callrec/manifest/__init__.py is the whole contract)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from callrec.manifest.base import _Model


class AudioChannel(StrEnum):
    """Who is on a recording's channel, in the file's order."""

    MIX = "mix"  # mono: everyone, mixed
    CUSTOMER = "customer"  # what the customer's phone sent (MixMonitor D: the channel's read)
    AGENT = "agent"  # what the customer heard: agents, the notice, hold music (D: the write)


MONO: tuple[AudioChannel, ...] = (AudioChannel.MIX,)
STEREO: tuple[AudioChannel, ...] = (AudioChannel.CUSTOMER, AudioChannel.AGENT)


class AudioVerdict(StrEnum):
    """What the audio check found in the conversation (ari_app/audio_check.py)."""

    CLEAN = "clean"  # speech where it should be
    CUSTOMER_SILENT = "customer_silent"  # stereo: nothing from the customer's phone
    AGENT_SILENT = "agent_silent"  # stereo: an agent answered, and nothing came back
    SILENT = "silent"  # nothing on any channel (mono: the mix)


class AudioCheck(_Model):
    """Speech found per channel from ``from_s`` (the first agent's answer, seconds into the
    recording) to the end of the file."""

    verdict: AudioVerdict
    from_s: float = Field(ge=0)
    speech_s: dict[AudioChannel, float]


class AudioFormat(StrEnum):
    """A recording's format in the archive (uploader/transcode.py makes FLAC and Opus)."""

    WAV = "wav"  # what MixMonitor wrote (or its raw stream with a header: ari_app/rawfile.py)
    FLAC = "flac"  # lossless: decodes to the WAV's samples exactly
    OPUS = "opus"  # Ogg Opus: speech at a fraction of the bytes


CONTENT_TYPES = {AudioFormat.WAV: "audio/wav", AudioFormat.FLAC: "audio/flac",
                 AudioFormat.OPUS: "audio/ogg"}


class ArchivedAudio(_Model):
    """The object the archive holds when it is not the WAV itself: the uploader's transcode of
    it, verified by decoding before the WAV left the spool. ``Recording.size``/``sha256`` stay
    those of the WAV (the original); these are the archived object's."""

    format: AudioFormat
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    duration_s: float = Field(ge=0)  # decoded, within one 20 ms Opus frame of the WAV's
    bitrate_kbps: int | None = None  # Opus only
    original_kept: bool = False  # the WAV was archived too ([upload] keep_original)


class Recording(_Model):
    path: str  # where the call flow's host sees the file
    channels: list[AudioChannel] = Field(default_factory=lambda: list(MONO))
    # Stereo was asked for and this recording is mono: why (ari_app/rawfile.py stereo_refusal).
    stereo_refused: str | None = None
    # Stereo: the headerless stream MixMonitor wrote (<id>.raw), its size and SHA-256. The WAV
    # at ``path`` is that stream with a header before it: its data chunk is the stream's bytes
    # exactly, short of a torn last frame (ari_app/rawfile.py wrap).
    source_size: int | None = None
    source_sha256: str | None = None
    # None: not checked (off, nobody answered, or the file was not proven complete)
    audio_check: AudioCheck | None = None
    mixmonitor_id: str | None = None
    started_at: datetime | None = None
    verified_at: datetime | None = None
    closed_at: datetime | None = None
    size: int | None = None
    duration_s: float | None = None
    sha256: str | None = None
    # Its writer died before finishing the WAV header (Asterisk killed): callrec set the two
    # size fields from the file before hashing it (ari_app/wavfile.py repair_header).
    header_repaired: bool = False
    # None: the archive holds the WAV (``<key>.wav``) and nothing else.
    archived: ArchivedAudio | None = None

    def objects(self) -> list[tuple[AudioFormat, int | None, str | None]]:
        """The recording's objects in the bucket: format (the key's suffix), size, SHA-256;
        the one to play first."""
        wav = (AudioFormat.WAV, self.size, self.sha256)
        if self.archived is None:
            return [wav]
        a = self.archived
        return [(a.format, a.size, a.sha256), *([wav] if a.original_kept else [])]

    @property
    def format(self) -> AudioFormat:
        """The format the archive plays and exports."""
        return self.archived.format if self.archived else AudioFormat.WAV
