"""SIPp as the bench's caller trunk and agent phones, with per-call results from its message trace.

The scenarios live in ``testbench/scenarios/``. Agent phones are long-running UAS processes (answer,
busy, never answer); callers are one SIPp run per batch whose ``-trace_msg`` log is parsed into one
:class:`CallResult` per Call-ID: SIP timings (INVITE -> 18x / 200 / BYE) and the final status.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from testbench import BenchError
from testbench.procs import Child

log = logging.getLogger(__name__)

SCENARIOS = Path(__file__).parent / "scenarios"
TRUNK_IP = "127.0.0.2"  # the PBX matches the trunk by this source address
AGENT_KINDS = ("answer", "busy", "noanswer", "transfer", "transfer_out", "consult", "park")
# Kinds that share a scenario, with the -key values that make them differ.
SCENARIO_OF = {"transfer_out": ("transfer", {"refer_to": "2003"}),
               "park": ("transfer", {"refer_to": "700"})}  # res_parking.conf parkext
# The SIPp default is 6000 for the RTP echo port: every agent phone gets its own.
_HEADER = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if not found:
        raise BenchError("sipp not found: apt-get install sip-tester (make deps does)")
    return found


def make_audio(path: Path, seconds: float = 1.0, freq: int = 440, volume: float = 0.3) -> Path:
    """An A-law WAV (SIPp skips the header) of a tone, or silence with volume 0: what the
    caller "says", looped for the whole call."""
    if shutil.which("sox") is None:
        raise BenchError("sox not found: apt-get install sox (make deps does)")
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "a-law", str(path), "synth", str(seconds),
         "sine", str(freq), "vol", str(volume)],
        check=True, capture_output=True,
    )
    return path


def make_voice(path: Path, source: Path, pause_s: float = 0.5) -> Path:
    """An A-law WAV of a recorded voice (one of the product's prompts) and a short pause: a
    party that talks, for the audio check (webrtcvad counts a tone as speech or not by pitch)."""
    if shutil.which("sox") is None:
        raise BenchError("sox not found: apt-get install sox (make deps does)")
    subprocess.run(["sox", str(source), "-r", "8000", "-c", "1", "-e", "a-law", str(path),
                    "pad", "0", str(pause_s)], check=True, capture_output=True)
    return path


@dataclass
class SipMessage:
    at: datetime
    sent: bool
    first_line: str
    headers: dict[str, str]

    @property
    def status(self) -> int | None:
        if self.first_line.startswith("SIP/2.0 "):
            return int(self.first_line.split()[1])
        return None

    @property
    def method(self) -> str | None:
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    @property
    def cseq_method(self) -> str:
        return self.headers.get("cseq", "").split()[-1:][0] if self.headers.get("cseq") else ""


@dataclass
class CallResult:
    """What one call looked like on the wire, from one SIPp side."""

    call_id: str
    messages: list[SipMessage] = field(default_factory=list)

    def _first(self, sent: bool, method: str | None = None, status: int | None = None,
               min_status: int = 0) -> SipMessage | None:
        for msg in self.messages:
            if msg.sent != sent:
                continue
            if method is not None and msg.method != method:
                continue
            if status is not None and msg.status != status:
                continue
            if min_status and (msg.status is None or msg.status < min_status
                               or msg.cseq_method != "INVITE"):
                continue
            return msg
        return None

    @property
    def from_header(self) -> str:
        return self.messages[0].headers.get("from", "") if self.messages else ""

    @property
    def invite_at(self) -> datetime | None:
        msg = next((m for m in self.messages if m.method == "INVITE"), None)
        return msg.at if msg else None

    def _ms_after_invite(self, msg: SipMessage | None) -> float | None:
        start = self.invite_at
        if msg is None or start is None:
            return None
        return (msg.at - start).total_seconds() * 1000

    @property
    def final_status(self) -> int | None:
        """The final response to the INVITE (>= 200), whichever side sent it."""
        for msg in self.messages:
            if msg.status is not None and msg.status >= 200 and msg.cseq_method == "INVITE":
                return msg.status
        return None

    @property
    def ringing_ms(self) -> float | None:
        msg = next((m for m in self.messages if m.status in (180, 183)), None)
        return self._ms_after_invite(msg)

    @property
    def answer_ms(self) -> float | None:
        """INVITE -> 200 OK (answer), in milliseconds."""
        msg = next((m for m in self.messages if m.status == 200 and m.cseq_method == "INVITE"),
                   None)
        return self._ms_after_invite(msg)

    @property
    def bye(self) -> SipMessage | None:
        return next((m for m in self.messages if m.method == "BYE"), None)

    @property
    def hangup_by_us(self) -> bool | None:
        """True if this SIPp side sent the BYE, False if it received it, None if no BYE."""
        bye = self.bye
        return None if bye is None else bye.sent

    @property
    def duration_s(self) -> float | None:
        """200 OK -> BYE, in seconds."""
        answer, bye = self.answer_ms, self._ms_after_invite(self.bye)
        return None if answer is None or bye is None else (bye - answer) / 1000


def parse_message_log(text: str) -> dict[str, CallResult]:
    """Split a SIPp ``-trace_msg`` log into calls keyed by Call-ID, in order of appearance."""
    calls: dict[str, CallResult] = {}
    parts = _HEADER.split(text)
    # parts = [preamble, ts1, body1, ts2, body2, ...]
    for stamp, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip("\n").splitlines()
        if len(lines) < 3:
            continue
        sent = " sent " in lines[0]
        sip = [line.strip() for line in lines[1:]]
        sip = [line for line in sip if line] or [""]
        headers: dict[str, str] = {}
        for line in sip[1:]:
            if not line or ":" not in line:
                break
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        call_id = headers.get("call-id")
        if not call_id:
            continue
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
        calls.setdefault(call_id, CallResult(call_id)).messages.append(
            SipMessage(at, sent, sip[0], headers))
    return calls


def _read_calls(path: Path) -> list[CallResult]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return list(parse_message_log(text).values())


class _Phone:
    """A SIPp UAS the bench runs: its calls from its message log, stopped by its PID."""

    message_log: Path
    child: Child | None

    def calls(self) -> list[CallResult]:
        """Every call this phone has seen so far."""
        return _read_calls(self.message_log)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=5)


class AgentPhone(_Phone):
    """A SIPp UAS that answers (echoing RTP), refuses with 486, or rings until cancelled."""

    def __init__(self, kind: str, port: int, media_port: int, log_dir: Path,
                 ip: str = "127.0.0.1", echo: bool = True, name: str = "") -> None:
        if kind not in AGENT_KINDS:
            raise BenchError(f"unknown agent phone kind {kind!r}; one of {AGENT_KINDS}")
        self.kind, self.port, self.media_port = kind, port, media_port
        self.ip, self.echo = ip, echo
        self.name = name or f"agent-{kind.replace('_', '-')}"
        self.log_dir = log_dir
        self.message_log = log_dir / f"{self.name}.messages.log"
        self.child: Child | None = None

    def start(self) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.message_log.unlink(missing_ok=True)
        scenario, keys = SCENARIO_OF.get(self.kind, (self.kind, {"refer_to": "2002"}))
        argv = [sipp_binary(), "-sf", str(SCENARIOS / f"agent_{scenario}.xml"),
                *(arg for key, value in keys.items() for arg in ("-key", key, value)),
                "-i", self.ip, "-p", str(self.port), "-mi", self.ip,
                "-mp", str(self.media_port), *(["-rtp_echo"] if self.echo else []), "-nostdin",
                "-trace_msg", "-message_file", str(self.message_log),
                "-trace_err", "-error_file", str(self.log_dir / f"{self.name}.errors.log")]
        self.child = Child(self.name, argv, self.log_dir / f"{self.name}.log",
                           marker=f"agent_{scenario}.xml")
        return self.child


_DTMF_NAMES = {"*": "star", "#": "pound", **{d: d for d in "0123456789"}}


def dtmf_pcap(digits: str, out: Path, gap_s: float = 0.3, step: int = 0) -> Path:
    """One pcap of RFC 2833 events for ``digits``, from sip-tester's one-digit pcaps. Those all
    start at unrelated RTP sequence numbers and timestamps: played one after another, a digit
    whose numbers are lower than the last one's is dropped by Asterisk as an old packet (seen:
    the 7 of "*7" never arrived). Here the numbers run on and each digit is a new event; ``step``
    numbers the pcaps one phone plays in turn, so that each starts past the one before."""
    packets: list[tuple[float, bytes]] = []  # (seconds from the start, frame)
    seq, stamp = 1000 + step * 500, 160000 + step * 800000
    for i, digit in enumerate(digits):
        data = (Path("/usr/share/sip-tester") / f"dtmf_2833_{_DTMF_NAMES[digit]}.pcap"
                ).read_bytes()
        first, off = None, 24
        while off < len(data):
            sec, usec, incl, _ = struct.unpack("<IIII", data[off:off + 16])
            frame = bytearray(data[off + 16:off + 16 + incl])
            at = sec + usec / 1e6
            first = at if first is None else first
            # Ethernet 14 + IPv4 20 + UDP 8 = 42 bytes before the RTP header.
            struct.pack_into(">HI", frame, 44, seq, stamp + i * int(gap_s * 8000))
            seq += 1
            packets.append((i * gap_s + at - first, bytes(frame)))
            off += 16 + incl
    body = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for at, data in packets:
        body.append(struct.pack("<IIII", int(at), int(at % 1 * 1e6), len(data), len(data)))
        body.append(data)
    out.write_bytes(b"".join(body))
    return out


class KeysPhone(_Phone):
    """The agent-keys endpoint's phone (started by the test that uses it): answers, then after
    each pause presses its keys, e.g. ``[(2.0, "*7"), (11.0, "*8")]``, and waits for the PBX
    to hang up (the last key must come before that)."""

    def __init__(self, port: int, media_port: int, log_dir: Path,
                 keys: list[tuple[float, str]], audio: Path | None = None) -> None:
        self.port, self.media_port, self.log_dir, self.keys = port, media_port, log_dir, keys
        self.audio = audio  # what the agent says (an A-law WAV, looped), else nothing
        self.message_log = log_dir / "agent-keys.messages.log"
        self.child: Child | None = None

    def _keys_xml(self) -> str:
        steps = [] if self.audio is None else [
            f'  <nop><action><exec rtp_stream="{self.audio},-1,8"/></action></nop>']
        for n, (pause_s, digits) in enumerate(self.keys):
            pcap = dtmf_pcap(digits, self.log_dir / f"agent-keys-{n}.pcap", step=n)
            steps.append(f'  <pause milliseconds="{int(pause_s * 1000)}"/>\n'
                         f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
                         f'  <pause milliseconds="{int(len(digits) * 300 + 200)}"/>')
        return "\n".join(steps)

    def start(self) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.message_log.unlink(missing_ok=True)
        scenario = self.log_dir / "agent_keys.xml"
        scenario.write_text((SCENARIOS / "agent_keys.xml").read_text().replace(
            "{{KEYS}}", self._keys_xml(), 1))
        argv = [sipp_binary(), "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(self.port),
                "-mi", "127.0.0.1", "-mp", str(self.media_port), "-nostdin", "-trace_msg",
                "-message_file", str(self.message_log), "-trace_err", "-error_file",
                str(self.log_dir / "agent-keys.errors.log")]
        self.child = Child("agent-keys", argv, self.log_dir / "agent-keys.log",
                           marker=str(scenario))
        return self.child


@dataclass
class CallerRun:
    returncode: int
    calls: list[CallResult]
    log_dir: Path

    def errors(self) -> str:
        path = self.log_dir / "errors.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Caller:
    """Places calls from the trunk address into the PBX under test."""

    pbx_port: int
    local_port: int
    media_port: int
    audio: Path
    log_root: Path
    local_ip: str = TRUNK_IP  # an agent phone placing calls uses 127.0.0.1

    def call(
        self,
        service: str,
        *,
        hold_s: float = 5.0,
        count: int = 1,
        rate: float = 1.0,
        caller_user: str | bytes = "0312345678",
        caller_name: str | bytes = "Bench Caller",
        timeout_s: float | None = None,
        extra_args: Iterable[str] = (),
        audio: Path | None = None,
    ) -> CallerRun:
        """Place ``count`` calls to ``service`` at ``rate`` calls/s; each hangs up after
        ``hold_s`` seconds of audio unless the PBX hangs up first."""
        self.log_root.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="caller-", dir=self.log_root))
        template = (SCENARIOS / "caller.xml").read_text()
        scenario = run_dir / "caller.xml"
        scenario.write_text(template.replace("{{HOLD_MS}}", str(int(hold_s * 1000)))
                            .replace("{{AUDIO}}", str(audio or self.audio)))
        argv: list[str | bytes] = [
            sipp_binary(), f"127.0.0.1:{self.pbx_port}", "-sf", str(scenario),
            "-i", self.local_ip, "-p", str(self.local_port), "-mi", self.local_ip,
            "-mp", str(self.media_port), "-s", service,
            "-key", "caller_user", caller_user, "-key", "caller_name", caller_name,
            "-m", str(count), "-r", str(rate), "-rp", "1000", "-l", str(max(count, 1)),
            "-nostdin", "-trace_msg", "-message_file", str(run_dir / "messages.log"),
            "-trace_err", "-error_file", str(run_dir / "errors.log"), *extra_args,
        ]
        limit = timeout_s if timeout_s is not None else hold_s + count / rate + 30
        with (run_dir / "sipp.out").open("wb") as out:
            try:
                result = subprocess.run([os.fsencode(a) for a in argv], stdout=out,
                                        stderr=subprocess.STDOUT, timeout=limit, check=False)
            except subprocess.TimeoutExpired as exc:
                raise BenchError(f"SIPp caller still running after {limit:.0f} s; "
                                 f"see {run_dir}") from exc
        if result.returncode not in (0, 1):
            out_text = (run_dir / "sipp.out").read_text(errors="replace")[-2000:]
            raise BenchError(f"SIPp caller failed (exit {result.returncode}):\n{out_text}")
        return CallerRun(result.returncode, _read_calls(run_dir / "messages.log"), run_dir)
