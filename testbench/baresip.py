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

MODULES = ("g711.so", "aufile.so", "account.so", "stdio.so", "menu.so")


def _config(home: Path, port: int, rtp: tuple[int, int], audio: Path) -> str:
    lines = [("poll_method", "epoll"), ("sip_listen", f"127.0.0.1:{port}"),
             ("net_interface", "127.0.0.1"), ("audio_source", f"aufile,{audio}"),
             ("audio_player", f"aufile,{home / 'heard.wav'}"), ("audio_alert", "aufile,/dev/null"),
             ("module_path", "/usr/lib/baresip/modules"), ("rtp_ports", f"{rtp[0]}-{rtp[1]}"),
             *(("module", name) for name in MODULES)]
    return "".join(f"{key}\t{value}\n" for key, value in lines)


class BaresipPhone:
    """An agent phone as endpoint ``name`` at 127.0.0.1:``port`` that answers every call."""

    def __init__(self, name: str, port: int, rtp: tuple[int, int], home: Path,
                 log_dir: Path) -> None:
        self.name, self.port, self.rtp, self.home, self.log_dir = name, port, rtp, home, log_dir

    def start(self) -> Child:
        binary = shutil.which("baresip")
        if binary is None:
            raise BenchError("baresip not found: apt-get install baresip-core (make deps does)")
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        audio = self.home / "agent.wav"
        # baresip's aufile reads 16-bit PCM only.
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16",
                        str(audio), "synth", "60", "sine", "660", "vol", "0.2"],
                       check=True, capture_output=True)
        (self.home / "config").write_text(_config(self.home, self.port, self.rtp, audio))
        (self.home / "accounts").write_text(
            f"<sip:{self.name}@127.0.0.1:{self.port}>;regint=0;answermode=auto;"
            "audio_codecs=PCMA,PCMU\n")
        return Child(self.name, [binary, "-f", str(self.home)],
                     self.log_dir / f"{self.name}.log", marker=str(self.home))
