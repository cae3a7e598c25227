"""Parsing SIPp's -trace_msg log into per-call results (no SIPp needed)."""

from __future__ import annotations

from testbench.sipp import parse_message_log


def block(stamp: str, sent: bool, text: str) -> str:
    way = "UDP message sent (100 bytes):" if sent else "UDP message received [100] bytes :"
    rule = "-" * 47
    return f"{rule} 2026-11-23 {stamp}\n{way}\n\n{text}\n\n"


INVITE = "INVITE sip:baseline@127.0.0.1:15060 SIP/2.0\nCall-ID: {cid}\nCSeq: 1 INVITE\n" \
         'From: "A" <sip:0312@127.0.0.2>;tag=1\n\nv=0\nc=IN IP4 127.0.0.2'


def reply(code: str, cid: str, method: str = "INVITE") -> str:
    return f"SIP/2.0 {code}\nCall-ID: {cid}\nCSeq: 1 {method}\nContent-Length: 0"


def test_answered_call_hung_up_by_caller() -> None:
    log = (block("10:00:00.000000", True, INVITE.format(cid="c1"))
           + block("10:00:00.001000", False, reply("100 Trying", "c1"))
           + block("10:00:00.250000", False, reply("180 Ringing", "c1"))
           + block("10:00:00.500000", False, reply("200 OK", "c1"))
           + block("10:00:00.501000", True, "ACK sip:x SIP/2.0\nCall-ID: c1\nCSeq: 1 ACK")
           + block("10:00:06.500000", True, "BYE sip:x SIP/2.0\nCall-ID: c1\nCSeq: 2 BYE")
           + block("10:00:06.502000", False, reply("200 OK", "c1", "BYE")))
    [call] = parse_message_log(log).values()
    assert call.call_id == "c1"
    assert call.final_status == 200
    assert call.ringing_ms == 250.0
    assert call.answer_ms == 500.0
    assert call.hangup_by_us is True
    assert call.duration_s == 6.0
    assert "0312" in call.from_header


def test_rejected_and_interleaved_calls_are_kept_apart() -> None:
    log = (block("10:00:00.000000", True, INVITE.format(cid="a"))
           + block("10:00:00.010000", True, INVITE.format(cid="b"))
           + block("10:00:00.020000", False, reply("486 Busy Here", "a"))
           + block("10:00:00.030000", False, reply("200 OK", "b"))
           + block("10:00:01.000000", False, "BYE sip:y SIP/2.0\nCall-ID: b\nCSeq: 5 BYE"))
    calls = parse_message_log(log)
    assert list(calls) == ["a", "b"]
    assert calls["a"].final_status == 486 and calls["a"].answer_ms is None
    assert calls["a"].hangup_by_us is None
    assert calls["b"].final_status == 200 and calls["b"].hangup_by_us is False


def test_a_200_to_bye_is_not_an_answer() -> None:
    log = (block("10:00:00.000000", True, INVITE.format(cid="c"))
           + block("10:00:00.100000", False, reply("200 OK", "c", "BYE")))
    [call] = parse_message_log(log).values()
    assert call.final_status is None and call.answer_ms is None
