"""A minimal SIP phone for what SIPp cannot do: an attended transfer by REFER with Replaces.

SIPp keeps one dialog per scenario call, and an attended transfer needs two: the phone answers the
customer's call (dialog A), calls the transfer target itself (dialog B, the consultation), then
sends on A a REFER whose Refer-To carries ``Replaces`` naming B (RFC 3891, RFC 5589 section 7).
Asterisk then swaps B's far end into A's bridge. UDP on loopback, no authentication, no RTP (the
bench's endpoints need none); just enough SIP for that, with every message kept for the test.
"""

from __future__ import annotations

import logging
import queue
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from testbench import BenchError

log = logging.getLogger(__name__)


@dataclass
class Msg:
    first: str
    headers: dict[str, str]
    raw: str

    @property
    def status(self) -> int | None:
        return int(self.first.split()[1]) if self.first.startswith("SIP/2.0") else None

    @property
    def method(self) -> str:
        return self.first.split()[0] if self.status is None else self.headers["cseq"].split()[1]

    def tag(self, header: str) -> str:
        return self.headers.get(header, "").partition(";tag=")[2].split(";")[0]


def parse(data: bytes) -> Msg:
    text = data.decode(errors="replace")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    headers: dict[str, str] = {}
    for line in head[1:]:
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), value.strip())
    return Msg(head[0], headers, text)


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # From/To value of our side, without tag
    remote: str  # the other side's From/To header value, with its tag
    target: str  # where in-dialog requests go (the other side's Contact)
    cseq: int = 1


@dataclass
class AttendedTransferPhone:
    """Answers one call, consults ``target`` after ``talk_s``, and transfers the caller to it
    ``consult_s`` later; ``messages`` keeps every message sent (">") and received ("<")."""

    port: int
    pbx_port: int
    user: str = "agent-attended"
    target: str = "2002"
    talk_s: float = 2.0
    consult_s: float = 2.0
    messages: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.responses: queue.Queue[Msg] = queue.Queue()
        self.invites: queue.Queue[Msg] = queue.Queue()
        self.stopped = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.worker = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.reader.start()
        self.worker.start()

    def stop(self) -> None:
        self.stopped.set()
        self.worker.join(5)
        self.reader.join(5)
        self.sock.close()

    # -- wire -----------------------------------------------------------------------------------
    def _send(self, text: str) -> None:
        body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
        data = text.replace("{len}", str(len(body.encode()))).encode()
        self.messages.append((">", data.decode()))
        self.sock.sendto(data, ("127.0.0.1", self.pbx_port))

    def _read(self) -> None:
        while not self.stopped.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            msg = parse(data)
            self.messages.append(("<", msg.raw))
            if msg.status is not None:
                self.responses.put(msg)
            elif msg.method == "INVITE":
                self.invites.put(msg)
            elif msg.method != "ACK":  # NOTIFY, BYE, OPTIONS: accept
                self._reply(msg, 200, "OK")

    def _reply(self, req: Msg, code: int, reason: str, extra: str = "", body: str = "") -> None:
        h = req.headers
        to = h["to"] if ";tag=" in h["to"] else h["to"] + ";tag=" + self._tag(h["call-id"])
        self._send(f"SIP/2.0 {code} {reason}\r\nVia: {h['via']}\r\nFrom: {h['from']}\r\n"
                   f"To: {to}\r\nCall-ID: {h['call-id']}\r\nCSeq: {h['cseq']}\r\n{extra}"
                   f"Content-Length: {{len}}\r\n\r\n{body}")

    def _tag(self, call_id: str) -> str:
        return "t" + str(abs(hash(call_id)) % 10 ** 9)

    def _sdp(self) -> str:
        return ("v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {self.port + 2} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n")

    def _request(self, method: str, d: Dialog, extra: str = "", body: str = "") -> None:
        self._send(f"{method} {d.target} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(8)}"
                   f"\r\nFrom: {d.local_uri};tag={d.local_tag}\r\nTo: {d.remote}\r\n"
                   f"Call-ID: {d.call_id}\r\nCSeq: {d.cseq} {method}\r\n"
                   f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nMax-Forwards: 70\r\n"
                   f"{extra}Content-Length: {{len}}\r\n\r\n{body}")

    def _response(self, call_id: str, method: str, timeout: float = 10.0) -> Msg:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.responses.get(timeout=0.2)
            except queue.Empty:
                continue
            if msg.headers.get("call-id") == call_id and msg.method == method and \
                    (msg.status or 0) >= 200:
                return msg
        raise BenchError(f"no final response to {method} ({call_id})")

    # -- the transfer -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            a = self._answer()
            time.sleep(self.talk_s)
            b = self._consult()
            time.sleep(self.consult_s)
            self._refer(a, b)
        except (BenchError, KeyError, queue.Empty, OSError) as exc:
            self.error = repr(exc)
            log.error("attended-transfer phone: %s", exc)

    def _answer(self) -> Dialog:
        invite = self.invites.get(timeout=30)
        contact = invite.headers["contact"].strip("<>").split(">")[0]
        self._reply(invite, 200, "OK", f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\n"
                    "Content-Type: application/sdp\r\n", self._sdp())
        call_id = invite.headers["call-id"]
        return Dialog(call_id, self._tag(call_id), invite.tag("from"),
                      invite.headers["to"].split(";tag=")[0], invite.headers["from"], contact,
                      cseq=1)

    def _consult(self) -> Dialog:
        uri = f"sip:{self.target}@127.0.0.1:{self.pbx_port}"
        d = Dialog(secrets.token_hex(10) + "@127.0.0.1", secrets.token_hex(4), "",
                   f"<sip:{self.user}@127.0.0.1:{self.port}>", f"<{uri}>", uri)
        self._request("INVITE", d, "Content-Type: application/sdp\r\n", self._sdp())
        ok = self._response(d.call_id, "INVITE", timeout=20)
        if ok.status != 200:
            raise BenchError(f"consultation call refused: {ok.first}")
        d.remote, d.remote_tag = ok.headers["to"], ok.tag("to")
        self._request("ACK", d)
        d.target = ok.headers.get("contact", f"<{uri}>").strip("<>").split(">")[0]
        d.cseq += 1
        return d

    def _refer(self, a: Dialog, b: Dialog) -> None:
        # Replaces names dialog B from the PBX's point of view (RFC 3891): its Call-ID, the
        # PBX's tag as to-tag and ours as from-tag.
        replaces = quote(f"{b.call_id};to-tag={b.remote_tag};from-tag={b.local_tag}", safe="")
        self._request("REFER", a, f"Refer-To: <sip:{self.target}@127.0.0.1?Replaces="
                      f"{replaces}>\r\nReferred-By: <sip:{self.user}@127.0.0.1>\r\n")
        accepted = self._response(a.call_id, "REFER")
        if accepted.status != 202:
            raise BenchError(f"REFER refused: {accepted.first}")
