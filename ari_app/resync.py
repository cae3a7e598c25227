"""Seeing Asterisk again: what callrec does at every ARI (re)connect.

Events are not replayed after a reconnect (res_ari drops them while the app is away), so callrec
reads the state instead: which calls ended meanwhile, what the ones still up did, the calls an
earlier run journaled, and channels an earlier run left in Stasis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from ari_app.ari import AriClient, AriError
from ari_app.call import Call
from ari_app.config import NoticeSettings
from ari_app.ending import Ending
from ari_app.recorder import Recorder, RecordingFile
from ari_app.stasis import StasisApp
from callrec.manifest import STEREO, CallManifest, RecordingStatus

log = logging.getLogger(__name__)

# The events callrec uses (ari_app/call.py, ari_app/stasis.py); Asterisk drops the rest for us.
# The filter applies to replies too: without RESTResponse, requests sent over the websocket
# (ari_app/ari.py) would never be answered - not even the one that sets the filter.
EVENTS = ("StasisStart", "Dial", "ChannelVarset", "ChannelHangupRequest", "ChannelDestroyed",
          "PlaybackFinished", "RESTResponse")


class Resync:
    def __init__(self, ari: AriClient, app: StasisApp, recorder: Recorder, ending: Ending,
                 notice: NoticeSettings, languages: dict[str, set[str]],
                 more_prompts: tuple[str, ...] = (),
                 resume_paused: Callable[[Call], None] = lambda call: None) -> None:
        self.ari, self.app, self.recorder, self.ending = ari, app, recorder, ending
        self.resume_paused = resume_paused  # ari_app/pause.py Pauses.after_restart
        self.notice, self.languages = notice, languages
        self.more_prompts = more_prompts  # other prompts the flow checks before playing
        self.adoptable: list[CallManifest] = []  # journal entries of an earlier run

    async def on_connect(self) -> None:
        await self.ari.filter_events(EVENTS)
        self.app.pbx_started, version = await self.ari.about()
        self.recorder.learn_version(version)
        await self.refresh_prompts()
        await self.app.resync()
        await self.adopt_journal()
        await self.app.rescue_orphans()
        self.ending.sight.in_sight.set()

    def on_state(self, up: bool) -> None:
        if not up:
            self.ending.sight.in_sight.clear()

    async def refresh_prompts(self) -> None:
        for prompt in (self.notice.prompt, self.notice.unavailable_prompt, *self.more_prompts):
            self.languages[prompt] = await self.ari.sound_languages(prompt)
        log.info("prompts installed: %s", {k: sorted(v) for k, v in self.languages.items()})

    async def adopt_journal(self) -> None:
        """Follow again the calls an earlier run journaled (once: this run's own calls are in
        ``app.calls`` until their manifest is written)."""
        while self.adoptable:
            entry = self.adoptable.pop(0)
            call = Call.restore(entry, self._file_of(entry))
            try:
                channel = await self.ari.request("GET", f"/channels/{call.channel_id}")
            except AriError:
                channel = None
            if channel is not None and \
                    self.app.stasis_args(channel, self.ari.settings.app) is not None:
                # Journaled in its flow (StasisApp.journal_in_flow) and still in Stasis: not
                # handed off, so not followed from here; rescue_orphans takes it on.
                self.app.in_flow[call.channel_id] = entry
                continue
            self.app.adopt(call)
            if channel is None or not await self._still_up(call):
                self._ended_meanwhile(call, self.app.pbx_started)
            self.ending.follow(call)

    async def _still_up(self, call: Call) -> bool:
        try:
            await self.ari.subscribe(f"channel:{call.channel_id}")
            await self.app.catch_up(call)
            await self._reprove(call)
        except AriError:
            return False
        log.info("%s adopted from the journal: channel still up", call.log_prefix())
        return True

    def _file_of(self, entry: CallManifest) -> RecordingFile | None:
        rec = entry.recording
        if entry.status is not RecordingStatus.RECORDED or rec is None:
            return None
        assert rec.started_at is not None
        file = self.recorder.file_of(entry.call_id, rec.mixmonitor_id or "", rec.started_at,
                                     rec.channels == list(STEREO), rec.stereo_refused)
        self.recorder.watch.closed(file.local_path.name)
        return file

    async def _reprove(self, call: Call) -> None:
        if call.paused is not None:
            # Muted by the earlier run, perhaps: proven only once unmuted (the pause ends).
            self.resume_paused(call)
            return
        if call.file is not None and call.status is RecordingStatus.RECORDED:
            proof = await self.recorder.reprove(call.channel_name, call.file)
            if proof is not None:
                call.reproven(proof)

    @staticmethod
    def _ended_meanwhile(call: Call, pbx_started: datetime | None) -> None:
        call.ended_unseen(pbx_started)
        log.info("%s adopted from the journal: channel ended meanwhile%s", call.log_prefix(),
                 " (Asterisk restarted)" if call.pbx_restarted else "")
        call.end(None)  # set from the recording's close time when known
