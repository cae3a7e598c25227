"""INVITE -> first RTP packet to the caller: how long a caller waits to hear the first sound.

tcpdump captures loopback during a batch (a capture filter keeps SIP to and from the PBX and RTP to
the caller's media address; it runs in C, so the measured system is barely disturbed); the pcap
is read afterwards. Per call: the INVITE's time, Asterisk's RTP port from its 200 OK SDP, and the
first RTP packet from that port to the caller after the 200 OK. In both paths that packet is the
notice's first frame: nothing else is played to the caller before it.
"""

from __future__ import annotations

import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testbench import BenchError

_CALL_ID = re.compile(rb"^(?:Call-ID|i)\s*:\s*(\S+)", re.M | re.I)
_M_AUDIO = re.compile(rb"^m=audio (\d+) ", re.M)


@dataclass(frozen=True)
class Packet:
    at: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@contextmanager
def capture(sip_port: int, caller_ip: str, media_port: int) -> Iterator[Path]:
    """tcpdump on lo while the block runs; yields the pcap's path (valid after the block)."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise BenchError("tcpdump is not installed (make deps installs it)")
    work = Path(tempfile.mkdtemp(prefix="callrec-pcap-"))
    pcap = work / "calls.pcap"
    expr = (f"udp and (port {sip_port} or (dst host {caller_ip} and dst port {media_port}))")
    proc = subprocess.Popen([tcpdump, "-i", "lo", "-n", "-s", "1500", "-B", "16384", "-w",
                             str(pcap), expr], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    time.sleep(0.5)  # let it open the interface before the first call
    try:
        yield pcap
    finally:
        proc.send_signal(signal.SIGINT)  # our child, by its PID
        _, err = proc.communicate(timeout=30)
        if not pcap.exists():
            raise BenchError(f"tcpdump wrote nothing: {err.decode(errors='replace')[-300:]}")


def packets(pcap: Path) -> Iterator[Packet]:
    """UDP/IPv4 packets of a little-endian pcap on Linux loopback (Ethernet framing)."""
    data = pcap.read_bytes()
    offset = 24
    while offset + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        src_ip, dst_ip = frame[26:30], frame[30:34]
        udp = 14 + ihl
        sport, dport = struct.unpack_from("!HH", frame, udp)
        yield Packet(sec + usec / 1e6, (".".join(map(str, src_ip)), sport),
                     (".".join(map(str, dst_ip)), dport), frame[udp + 8:])


def first_sound_ms(pcap: Path, sip_port: int, caller_ip: str, media_port: int) -> list[float]:
    invites: dict[bytes, float] = {}
    waiting: dict[int, tuple[bytes, float]] = {}  # Asterisk RTP port -> (call, 200 OK time)
    results: list[float] = []
    for p in packets(pcap):
        if p.dst == (caller_ip, media_port):
            call = waiting.pop(p.src[1], None)
            if call is not None and call[0] in invites and p.at >= call[1]:
                results.append((p.at - invites.pop(call[0])) * 1000)
            continue
        head = p.payload[:12]
        found = _CALL_ID.search(p.payload)
        if found is None:
            continue
        if head.startswith(b"INVITE ") and p.dst[1] == sip_port:
            invites.setdefault(found.group(1), p.at)
        elif head.startswith(b"SIP/2.0 200") and b"INVITE" in p.payload.split(b"\r\n\r\n")[0]:
            port = _M_AUDIO.search(p.payload)
            if port is not None:
                waiting[int(port.group(1))] = (found.group(1), p.at)
    return results
