"""The demo's agent phone: baresip, answering every call by itself (``answermode=auto``).

A SIPp phone polls every millisecond (its main loop waits in epoll_wait with a 1 ms timeout)
and costs about 2 % of a core doing nothing; baresip sleeps until a packet comes: 0.00 % in 30 s
on the bench. The tests keep SIPp (it logs every message they check); the demo, which stays up,
takes baresip. Its side of the call is a 60 s tone (it hangs up when its audio file ends).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testbench import BenchError
from testbench.procs import Child
from testbench.sipp import TRUNK_IP

MODULES = ("g711.so", "aufile.so", "account.so", "stdio.so", "menu.so")


def _config(home: Path, port: int, rtp: tuple[int, int], audio: Path,
            address: str = "127.0.0.1", *extra: tuple[str, str]) -> str:
    lines = [("poll_method", "epoll"), ("sip_listen", f"{address}:{port}"),
             ("net_interface", address), ("audio_source", f"aufile,{audio}"),
             ("audio_player", f"aufile,{home / 'heard.wav'}"), ("audio_alert", "aufile,/dev/null"),
             ("module_path", "/usr/lib/baresip/modules"), ("rtp_ports", f"{rtp[0]}-{rtp[1]}"),
             *(("module", name) for name in MODULES), *extra]
    return "".join(f"{key}\t{value}\n" for key, value in lines)


def _binary() -> str:
    binary = shutil.which("baresip")
    if binary is None:
        raise BenchError("baresip not found: apt-get install baresip-core (make deps does)")
    return binary


def _tone(path: Path, seconds: float, freq: int, volume: float) -> Path:
    """16-bit PCM (baresip's aufile reads nothing else); baresip hangs up when it ends."""
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16",
                    str(path), "synth", str(seconds), "sine", str(freq), "vol", str(volume)],
                   check=True, capture_output=True)
    return path


class BaresipCaller:
    """A caller on the trunk's address (127.0.0.2) that is not SIPp: it says a tone and keeps
    what it heard (decoded, by baresip's sndfile module), so a test checks the prompts the
    caller really got."""

    def __init__(self, home: Path, pbx_port: int, port: int, rtp: tuple[int, int]) -> None:
        self.home, self.pbx_port, self.port, self.rtp = home, pbx_port, port, rtp

    def call(self, did: str, number: str, seconds: float, freq: int = 440) -> Path:
        """Call ``did`` as ``number`` for ``seconds``; the WAV of what was heard."""
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        audio = _tone(self.home / "said.wav", seconds + 5, freq, 0.3)
        # sndfile dumps what was sent and what was heard (decoded): dump-*-dec.wav.
        (self.home / "config").write_text(_config(
            self.home, self.port, self.rtp, audio, TRUNK_IP, ("module", "sndfile.so"),
            ("snd_path", str(self.home))))
        (self.home / "accounts").write_text(
            f"<sip:{number}@{TRUNK_IP}:{self.port}>;regint=0;audio_codecs=PCMA,PCMU\n")
        ran = subprocess.run([_binary(), "-f", str(self.home), "-e",
                              f"/dial sip:{did}@127.0.0.1:{self.pbx_port}", "-t",
                              str(int(seconds))], capture_output=True, timeout=seconds + 20,
                             check=False)
        (self.home / "baresip.log").write_bytes(ran.stdout + ran.stderr)
        heard = sorted(self.home.glob("dump-*-dec.wav"))
        if not heard:
            raise BenchError(f"baresip heard nothing (see {self.home / 'baresip.log'})")
        return heard[0]


class BaresipPhone:
    """An agent phone as endpoint ``name`` at 127.0.0.1:``port`` that answers every call."""

    def __init__(self, name: str, port: int, rtp: tuple[int, int], home: Path,
                 log_dir: Path) -> None:
        self.name, self.port, self.rtp, self.home, self.log_dir = name, port, rtp, home, log_dir

    def start(self) -> Child:
        binary = _binary()
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        audio = _tone(self.home / "agent.wav", 60, 660, 0.2)
        (self.home / "config").write_text(_config(self.home, self.port, self.rtp, audio))
        (self.home / "accounts").write_text(
            f"<sip:{self.name}@127.0.0.1:{self.port}>;regint=0;answermode=auto;"
            "audio_codecs=PCMA,PCMU\n")
        return Child(self.name, [binary, "-f", str(self.home)],
                     self.log_dir / f"{self.name}.log", marker=str(self.home))
