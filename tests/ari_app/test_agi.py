"""The FastAGI protocol edges, against in-memory streams (no PBX needed)."""

from __future__ import annotations

import asyncio

import pytest

from ari_app.agi import AgiError, AgiSession, call_from_headers, read_headers


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
    assert channel["id"] == "1.2" and channel["caller"] == {"number": "", "name": "Bad\ufffd\ufffd"}
    with pytest.raises(AgiError, match="closed"):
        await read_headers(reader_with(b"agi_channel: x\n"))  # EOF before the blank line
    with pytest.raises(AgiError, match="too large"):
        await read_headers(reader_with(b"agi_x: " + b"a" * 70000 + b"\n\n"))


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
