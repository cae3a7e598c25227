"""The FastAGI protocol edges, against in-memory streams (no PBX needed)."""

from __future__ import annotations

import asyncio

import pytest

from ari_app.agi import (
    AgiConnectionLost,
    AgiDoor,
    AgiError,
    AgiSession,
    call_from_headers,
    read_headers,
)
from ari_app.call import Call
from callrec.manifest import Party, Policy


def reader_with(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


class FakeWriter:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        return None


async def test_headers_are_read_leniently_and_bounded() -> None:
    raw = (b"agi_network_script: callrec\nagi_channel: PJSIP/trunk-1\n"
           b"agi_calleridname: Bad\xff\xfe\nagi_callerid: unknown\nagi_uniqueid: 1.2\n\n")
    headers = await read_headers(reader_with(raw))
    assert headers["agi_calleridname"] == "Bad\ufffd\ufffd"
    channel = call_from_headers(headers)
    assert channel.uniqueid == "1.2" and channel.caller == Party(number_raw="",
                                                                  name_raw="Bad\ufffd\ufffd")
    with pytest.raises(AgiError, match="closed"):
        await read_headers(reader_with(b"agi_channel: x\n"))  # EOF before the blank line
    with pytest.raises(AgiError, match="too large"):
        await read_headers(reader_with(b"agi_x: " + b"a" * 70000 + b"\n\n"))


def test_the_call_is_filed_under_the_linked_id_the_door_passes() -> None:
    """AGI sends no linked id of its own (res_agi.c setup_env): the shipped doors pass it, and
    the manifest then names the id Asterisk's CDR files the call under."""
    headers = {"agi_uniqueid": "1.3", "agi_channel": "PJSIP/customer-3",
               "agi_arg_1": "direction=outbound", "agi_arg_2": "linkedid=1.2"}
    assert call_from_headers(headers).linkedid == "1.2"
    assert call_from_headers({**headers, "agi_arg_2": "linkedid="}).linkedid is None
    assert call_from_headers({"agi_uniqueid": "1.3"}).linkedid is None


async def test_replies_hangup_lines_and_usage_blocks() -> None:
    reader = reader_with(b"200 result=0 endpos=37840\n"
                         b"HANGUP\n200 result=-1 endpos=1200\n"
                         b"520-Invalid command syntax.  Proper usage follows:\nUsage: x\n"
                         b"520 End of proper usage.\n"
                         b"200 result=1 (value with spaces)\n")
    writer = FakeWriter()
    session = AgiSession(reader, writer, {})  # type: ignore[arg-type]
    first = await session.command('STREAM FILE callrec/notice ""')
    assert (first.code, first.result, session.hung_up) == (200, 0, False)
    second = await session.command('STREAM FILE callrec/notice ""')
    assert (second.code, second.result, session.hung_up) == (200, -1, True)
    assert (await session.command("BAD")).code == 520
    assert (await session.command("GET VARIABLE X")).data == "value with spaces"
    assert writer.sent.count(b"\n") == 4
    with pytest.raises(AgiError, match="closed"):
        await session.command("ANSWER")
    with pytest.raises(AgiError, match="line break"):
        await session.command("SET VARIABLE X \"a\nHANGUP\"")


class BrokenWriter(FakeWriter):
    async def drain(self) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")


async def test_a_notice_cut_by_the_connection_started_and_was_not_heard_in_full() -> None:
    """Asterisk had STREAM FILE when the connection went (it died mid-notice): the notice is on
    record as started, not completed. A command that never left is no notice at all."""
    call = Call.from_agi("1.2", "PJSIP/trunk-1", None, Party(), Policy.OPTIONAL)
    headers = {"agi_language": "ja"}
    cut = AgiSession(reader_with(b""), FakeWriter(), headers)  # type: ignore[arg-type]
    result = await AgiDoor(cut, None, call).play("callrec/notice", "ja")  # type: ignore[arg-type]
    assert not result.completed and result.started_at <= result.ended_at
    never_sent = AgiSession(reader_with(b""), BrokenWriter(), headers)  # type: ignore[arg-type]
    with pytest.raises(AgiError, match="lost before STREAM") as raised:
        await AgiDoor(never_sent, None, call).play(  # type: ignore[arg-type]
            "callrec/notice", "ja")
    assert not isinstance(raised.value, AgiConnectionLost)
