"""The tests' shared fakes, in one place: AMI, a door, recordings on disk, a flow.

A fake stands in for a real part only where the test is about the code around it; the proof of a
recording is never faked: ``proven`` runs Recorder's own rule against a fake AMI and a real file
held open for writing, as MixMonitor holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from ari_app.ami import AmiClient, AmiError
from ari_app.announce import PlayResult
from ari_app.closewatch import CloseWatch
from ari_app.config import AmiSettings, AriAppSettings, Route, SpoolSettings
from ari_app.flow import Flow
from ari_app.recorder import ID_VAR, Recorder, VerifiedRecording

CALL_ID = "20261123T164052Z-c1005ac3d30b"
CHANNEL = "PJSIP/trunk-00000001"
ASTERISK_DIR = "/var/spool/asterisk/callrec"


def asterisk_wav(data_size: int | None) -> bytes:
    """A header as formats/format_wav.c writes it: sizes 0 at open, set at close (``None``)."""
    riff, data = (0, 0) if data_size is None else (data_size + 36, data_size)
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" +
            struct.pack("<I", data))


class FakeAmi:
    """Answers GetVar from ``variables``; records the actions sent."""

    def __init__(self, variables: dict[str, str] | None = None) -> None:
        self.variables = variables or {}
        self.actions: list[dict[str, str]] = []
        self.connected = True

    async def getvar(self, channel: str, variable: str) -> str:
        return self.variables.get(variable, "")

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        self.actions.append(fields)
        return {"Response": "Success"}

    async def mixmonitor(self, channel: str, file: str, options: str) -> str:
        self.actions.append({"Action": "MixMonitor", "Channel": channel, "File": file,
                             "Options": options})
        return self.variables.get(ID_VAR, "")


class FlakyAmi(FakeAmi):
    """Its next calls fail with these errors, one each; MixMonitor's reply never comes."""

    def __init__(self, variables: dict[str, str], failures: list[AmiError]) -> None:
        super().__init__(variables)
        self.failures = failures

    def _next(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def getvar(self, channel: str, variable: str) -> str:
        self._next()
        return await super().getvar(channel, variable)

    async def action(self, fields: dict[str, str], timeout: float | None = None) -> Any:
        self._next()
        return await super().action(fields, timeout)

    async def mixmonitor(self, channel: str, file: str, options: str) -> str:
        raise AmiError("AMI MixMonitor timed out after 2.0 s")


def mixmonitor_vars(file: str, mixmonitor_id: str = "0x55d1") -> dict[str, str]:
    """What Asterisk answers for a MixMonitor recording ``file`` (its ``i()`` ID, datastore)."""
    return {ID_VAR: mixmonitor_id, f"MIXMONITOR({mixmonitor_id},filename)": file}


def recorder(spool: Path, ami: FakeAmi | None = None, verify_s: float = 1.0,
             watch: CloseWatch | None = None) -> tuple[Recorder, FakeAmi]:
    ami = ami or FakeAmi()
    settings = SpoolSettings(local_dir=spool, asterisk_dir=Path(ASTERISK_DIR))
    return Recorder(cast(AmiClient, ami), settings, verify_s, watch or CloseWatch(spool)), ami


@contextlib.contextmanager
def writing(path: Path, data: bytes = asterisk_wav(None)) -> Iterator[int]:
    """``path`` with a WAV header, held open for writing (as MixMonitor holds its file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o640)
    os.write(fd, data)
    try:
        yield fd
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


async def proven(rec: Recorder, ami: FakeAmi, call_id: str = CALL_ID) -> VerifiedRecording:
    """A real proof from Recorder's rule: the caller must hold the file open (``writing``)."""
    asterisk_path, _ = rec.paths(call_id)
    ami.variables.update(mixmonitor_vars(asterisk_path))
    return await rec.start(call_id, CHANNEL)


class StepDoor:
    """A door that logs each step; ``answer_s`` delays the answer."""

    def __init__(self, answer_s: float = 0.0) -> None:
        self.log: list[str] = []
        self.vars: dict[str, str] = {}
        self.answer_s = answer_s
        self.recording_asked = asyncio.Event()

    @property
    def played(self) -> list[str]:
        return [step.removeprefix("play ") for step in self.log if step.startswith("play ")]

    async def answer(self) -> None:
        await asyncio.sleep(self.answer_s)
        self.log.append("answered")

    async def follow(self) -> None:
        self.log.append("follow")

    async def play(self, prompt: str, language: str) -> PlayResult:
        self.log.append(f"play {prompt}")
        now = datetime.now(UTC)
        return PlayResult(now, now, True)

    async def set_var(self, name: str, value: str) -> None:
        self.vars[name] = value
        self.log.append(f"{name}={value}")

    async def hangup(self) -> None:
        self.log.append("hangup")

    async def proceed(self, route: Route | None) -> None:
        self.log.append("proceed")


def flow(recorder: Recorder | None = None, languages: dict[str, set[str]] | None = None,
         **settings: object) -> Flow:
    """A flow with a DID 9001 (force, en) and the notice installed in ja and en."""
    s = AriAppSettings.model_validate({
        "policy": "optional",
        "routes": {"9001": {"context": "agents", "extension": "q", "policy": "force",
                            "language": "en"}},
        **settings})
    rec = recorder or Recorder(AmiClient(AmiSettings()), s.spool, 1.0, CloseWatch(s.spool.local))
    return Flow(s, rec.ami, rec, languages if languages is not None
                else {"callrec/notice": {"ja", "en"}, "callrec/unavailable": {"ja", "en"}})


class FakeBucket:
    """The few Store reads reconcile makes (list, get), over a dict of key -> bytes."""

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects = objects if objects is not None else {}

    def list_keys(self, prefix: str, start_after: str = "") -> list[tuple[str, str]]:
        return [(k, f"etag-{len(v)}") for k, v in sorted(self.objects.items())
                if k.startswith(prefix) and k > start_after]

    def get_bytes(self, key: str) -> bytes | None:
        return self.objects.get(key)


def cdr_row(start: datetime, src: str, dst: str, channel: str, dstchannel: str, lastapp: str,
            disposition: str, uniqueid: str, linkedid: str, userfield: str = "",
            seconds: int = 5, lastdata: str = "") -> list[str]:
    """One cdr_csv row with loguniqueid, loguserfield and newcdrcolumns (testbench/conf/cdr.conf),
    its 21 columns in cdr_csv.c's order."""
    fmt = "%Y-%m-%d %H:%M:%S"
    end = start + timedelta(seconds=seconds)
    answer = start if disposition == "ANSWERED" else None
    return ["", src, dst, "callrec-inbound", f'"Caller" <{src}>', channel, dstchannel, lastapp,
            lastdata, start.strftime(fmt), answer.strftime(fmt) if answer else "",
            end.strftime(fmt), str(seconds), str(seconds if answer else 0), disposition,
            "DOCUMENTATION", uniqueid, userfield, "", linkedid, "1"]


class FakeAmiServer:
    """A tiny AMI on 127.0.0.1 that accepts any login; ``drop_next`` connections are closed
    as soon as they are accepted (an AMI cut while callrec reconnects)."""

    def __init__(self) -> None:
        self.drop_next = 0
        self.logins = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> FakeAmiServer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.drop_next:
            self.drop_next -= 1
            writer.transport.abort()
            return
        self._writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                block = (await reader.readuntil(b"\r\n\r\n")).decode()
                fields = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
                if fields.get("Action") == "Login":
                    self.logins += 1
                writer.write(f"Response: Success\r\nActionID: {fields.get('ActionID', '')}\r\n"
                             "Message: ok\r\n\r\n".encode())
