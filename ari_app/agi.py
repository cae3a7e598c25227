"""The FastAGI door: ``AGI(agi://127.0.0.1:4573/callrec)`` for dialplans that keep control.

The same flow as the Stasis door (ari_app/flow.py) runs over the AGI connection: answer, MixMonitor
over AMI, verify, then the notice with ``STREAM FILE`` and no escape digits (it cannot be
skipped). When the AGI returns, CALLREC_STATUS tells the dialplan what happened and
CALLREC_ROUTE where the DID's route is; callrec follows the rest of the call over ARI (a channel
subscription works for channels outside Stasis too) and writes the manifest.

Why not panoramisk's FastAGI server: its request reader loops forever when Asterisk closes the
connection before the header block ends, and it decodes headers as strict UTF-8, which a caller
name from the network can break. This one reads with limits and timeouts and decodes leniently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ari_app import AriAppError
from ari_app.announce import PlayResult
from ari_app.ari import AriClient
from ari_app.call import Call
from ari_app.config import Route
from callrec.manifest import Party, Policy, normalise_number

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
_REPLY = re.compile(r"^(\d{3})[ -](?:result=(-?\d+))?\s*(?:\((.*?)\))?\s*(?:endpos=(\d+))?")


class AgiError(AriAppError):
    """The AGI connection broke, timed out or Asterisk refused a command."""


class AgiConnectionLost(AgiError):
    """The connection closed after the command was sent, before its reply: Asterisk had it."""


@dataclass
class AgiReply:
    code: int
    result: int | None
    data: str | None


class AgiSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 headers: dict[str, str]) -> None:
        self.reader, self.writer, self.headers = reader, writer, headers
        self.hung_up = False
        # One command at a time on the connection (AGI answers in order, one reply each): the
        # flow issues some operations together, which the Stasis door runs concurrently.
        self._turn = asyncio.Lock()

    async def command(self, text: str, timeout: float = 60.0,
                      sent: Callable[[], None] | None = None) -> AgiReply:
        """``sent``: called once the command is on its way to Asterisk, before its reply (a
        STREAM FILE replies only when the prompt ends)."""
        if "\n" in text or "\r" in text:
            raise AgiError("AGI command with a line break refused")
        async with self._turn:
            return await self._command(text, timeout, sent)

    async def done(self) -> None:
        """Tell the dialplan callrec finished its part of this AGI (dialplan/callrec.conf): a
        FastAGI connection that just closes also leaves AGISTATUS=SUCCESS."""
        await self.command("SET VARIABLE CALLREC_DONE 1")

    async def _command(self, text: str, timeout: float,
                       sent: Callable[[], None] | None = None) -> AgiReply:
        try:
            self.writer.write(text.encode() + b"\n")
            await self.writer.drain()
        except ConnectionError as exc:
            raise AgiError(f"AGI connection lost before {text.split()[0]}: {exc!r}") from exc
        if sent is not None:
            sent()
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), timeout)
            except TimeoutError as exc:
                raise AgiError(f"AGI {text.split()[0]}: no reply in {timeout:.0f} s") from exc
            if not raw:
                raise AgiConnectionLost(f"AGI connection closed during {text.split()[0]}")
            line = raw.decode(errors="replace").strip()
            if line == "HANGUP":  # Asterisk tells FastAGI the channel hung up (AGISIGHUP)
                self.hung_up = True
                continue
            match = _REPLY.match(line)
            if not match:
                continue
            code = int(match.group(1))
            if line[3:4] == "-":  # 520- multi-line usage: read to its end
                while not (await self.reader.readline()).startswith(b"520 "):
                    pass
            result = int(match.group(2)) if match.group(2) is not None else None
            return AgiReply(code, result, match.group(3))


async def read_headers(reader: asyncio.StreamReader, timeout: float = 5.0) -> dict[str, str]:
    headers: dict[str, str] = {}
    size = 0
    while True:
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout)
        except ValueError as exc:  # one line beyond the stream's limit (64 KiB)
            raise AgiError("AGI request headers too large") from exc
        size += len(raw)
        if not raw:
            raise AgiError("AGI connection closed before the request ended")
        if size > MAX_HEADER_BYTES:
            raise AgiError("AGI request headers too large")
        line = raw.decode(errors="replace").rstrip("\r\n")
        if not line:
            return headers
        key, sep, value = line.partition(": ")
        if sep:
            headers[key] = value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiDoor:
    def __init__(self, session: AgiSession, ari: AriClient, call: Call,
                 playing: Callable[[Call, str, str, datetime], None] | None = None) -> None:
        self.session, self.ari, self.call = session, ari, call
        # A prompt began (StasisApp.journal_in_flow, as for the Stasis door): killed in the
        # notice, callrec ends the AGI, the dialplan takes its app-down path, and the next run
        # must still know the caller heard the notice begin, under a verified recording.
        self.playing = playing

    async def _ok(self, text: str, timeout: float = 60.0) -> AgiReply:
        reply = await self.session.command(text, timeout)
        if reply.code != 200 or (reply.result is not None and reply.result < 0
                                 and not text.startswith("STREAM")):
            raise AgiError(f"AGI {text.split()[0]} failed: {reply}")
        return reply

    async def answer(self) -> None:
        await self._ok("ANSWER")

    async def follow(self) -> None:
        await self.ari.subscribe(f"channel:{self.call.channel_id}")

    async def set_var(self, name: str, value: str) -> None:
        await self._ok(f"SET VARIABLE {name} {_quote(value)}")

    async def hangup(self) -> None:
        await self.session.command("HANGUP")

    async def play(self, prompt: str, language: str) -> PlayResult:
        if language != self.session.headers.get("agi_language"):
            await self.set_var("CHANNEL(language)", language)
        started = datetime.now(UTC)
        playing = self.playing
        sent = None if playing is None else \
            (lambda: playing(self.call, prompt, language, started))
        try:  # No escape digits: DTMF cannot cut the notice short.
            reply = await self.session.command(f'STREAM FILE {prompt} ""', sent=sent)
        except AgiConnectionLost:
            # Asterisk had the command and the connection went (Asterisk died, or callrec's
            # side was cut) while it played: the notice started, and was not heard in full.
            return PlayResult(started, datetime.now(UTC), False)
        completed = reply.code == 200 and reply.result == 0 and not self.session.hung_up \
            and not self.call.hung_up.is_set()
        return PlayResult(started, datetime.now(UTC), completed)

    async def proceed(self, route: Route | None) -> None:
        """The dialplan keeps control; it finds the DID's route in CALLREC_ROUTE."""
        if route is not None:
            await self.set_var("CALLREC_ROUTE",
                               f"{route.context},{route.extension},{route.priority}")


@dataclass(frozen=True)
class AgiChannel:
    """The channel an AGI request came from, as its headers tell (Asterisk writes "unknown"
    for a caller id it has not)."""

    uniqueid: str
    name: str
    caller: Party
    exten: str | None
    language: str
    # The call's linked id: AGI sends none of its own (res_agi.c setup_env), so the shipped
    # doors pass ${CHANNEL(linkedid)}; an outbound call's channel is the callee's, whose linked
    # id is the agent's (Dial's requestor), the id Asterisk's CDR files the call under.
    linkedid: str | None = None

    def call(self, policy: Policy) -> Call:
        return Call.from_agi(self.uniqueid, self.name, self.exten, self.caller, policy,
                             self.linkedid)


def call_from_headers(headers: dict[str, str]) -> AgiChannel:
    number = headers.get("agi_callerid", "")
    number = "" if number == "unknown" else number
    name = headers.get("agi_calleridname", "")
    return AgiChannel(headers.get("agi_uniqueid", ""), headers.get("agi_channel", ""),
                      Party(number_raw=number, name_raw="" if name == "unknown" else name,
                            number=normalise_number(number)),
                      headers.get("agi_extension"), headers.get("agi_language", ""),
                      agi_args(headers).get("linkedid") or None)


def agi_args(headers: dict[str, str]) -> dict[str, str]:
    """``AGI(agi://host/callrec,key=value,...)`` arguments, like the Stasis door's args."""
    args: dict[str, str] = {}
    for i in range(1, 16):
        key, sep, value = headers.get(f"agi_arg_{i}", "").partition("=")
        if sep and key:
            args[key.strip()] = value.strip()
    return args


Handler = Callable[[AgiSession], Awaitable[None]]


class AgiServer:
    """Accepts FastAGI connections for the ``callrec`` script and hands them to ``handler``."""

    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self.host, self.port, self.handler = host, port, handler
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connection, self.host, self.port)
        log.info("FastAGI door on agi://%s:%d/callrec", self.host, self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            headers = await read_headers(reader)
            script = headers.get("agi_network_script", "").split("?", 1)[0].strip("/")
            if script != "callrec":
                log.warning("FastAGI request for unknown script %r refused", script[:64])
                return
            await self.handler(AgiSession(reader, writer, headers))
        except (AgiError, TimeoutError, ConnectionError) as exc:
            log.warning("FastAGI connection: %r", exc)
        finally:
            writer.close()
