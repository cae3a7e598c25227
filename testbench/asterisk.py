"""One Asterisk instance in the sandbox chroot: configuration, start, readiness, stop.

Each instance (``demo``, ``test``) has its own ports and its own directories under
``/srv/callrec/<instance>`` inside the chroot, so a running demo and a test run never share state.
Configuration is rendered from ``testbench/conf/*.conf`` plus the project's ``dialplan/`` files
at every start, with credentials generated for that start (never stored in the repo).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec_cli.setup.tree import Tree
from testbench import BenchError
from testbench.admin import LAYOUTS, SETUP_OWNS, admin_tree, own_datadir
from testbench.chroot import chroot_user
from testbench.procs import Child, wait_until

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "conf"
REPO = Path(__file__).resolve().parents[1]
DIALPLAN = REPO / "dialplan"
SOUNDS = REPO / "sounds"


@dataclass(frozen=True)
class Ports:
    """Every port one bench instance uses; all bound on loopback."""

    sip: int
    http: int
    ami: int
    rtp_start: int
    rtp_end: int
    trunk: int
    agent_answer: int
    agent_busy: int
    agent_noanswer: int
    agent_transfer: int
    agent_transfer_out: int
    agent_consult: int
    agent_attended: int  # testbench/sipua.py, started by the test that uses it
    agent_park: int  # parks the caller (REFER to the parking extension)
    agent_keys: int  # presses hot-keys (testbench/sipp.py KeysPhone, started by its test)
    outside: int  # an outside party's phone behind trunk2 (transfers to outside numbers)
    caller_media: tuple[int, int]
    agent_media: int
    s3: int
    agi: int


PRESETS: dict[str, Ports] = {
    "demo": Ports(sip=5060, http=8088, ami=5038, rtp_start=20000, rtp_end=20999, trunk=5070,
                  agent_answer=5071, agent_busy=5072, agent_noanswer=5073, agent_transfer=5074,
                  agent_transfer_out=5075, outside=5076, agent_consult=5077,
                  agent_attended=5078, agent_park=5079, agent_keys=5082,
                  caller_media=(30000, 34999), agent_media=36000, s3=8333, agi=4573),
    # 2000 RTP ports: 2 legs x ~400 concurrent calls at saturation load (40 calls/s x 9 s).
    "test": Ports(sip=15060, http=18088, ami=15038, rtp_start=21000, rtp_end=22999, trunk=15070,
                  agent_answer=15071, agent_busy=15072, agent_noanswer=15073, agent_transfer=15074,
                  agent_transfer_out=15075, outside=15076, agent_consult=15077,
                  agent_attended=15078, agent_park=15079, agent_keys=15082,
                  caller_media=(40000, 44999), agent_media=46000, s3=28333, agi=14573),
    # The PBX `callrec setup` is tested on (testbench/admin.py): a few calls at a time.
    "setup": Ports(sip=25060, http=28088, ami=25038, rtp_start=23000, rtp_end=23999,
                   trunk=25070, agent_answer=25071, agent_busy=25072, agent_noanswer=25073,
                   agent_transfer=25074, agent_transfer_out=25075, outside=25076,
                   agent_consult=25077, agent_attended=25078, agent_park=25079, agent_keys=25082,
                   caller_media=(50000, 51999), agent_media=53000, s3=16333, agi=24573),
}


@dataclass(frozen=True)
class AsteriskCredentials:
    ari_user: str
    ari_password: str
    ami_user: str
    ami_secret: str


def ari_auth(creds: AsteriskCredentials) -> dict[str, str]:
    """The Authorization header for ARI (never api_key= in a URL)."""
    token = base64.b64encode(f"{creds.ari_user}:{creds.ari_password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Asterisk:
    """Asterisk 22 running inside the chroot as its ``asterisk`` user."""

    def __init__(self, root: Path, instance: str, ports: Ports, log_dir: Path,
                 layout: str = "bench") -> None:
        if layout not in LAYOUTS:
            raise BenchError(f"unknown layout {layout!r}; one of {LAYOUTS}")
        self.layout = layout
        self.root = root
        self.instance = instance
        self.ports = ports
        self.log_dir = log_dir
        self.home = f"/srv/callrec/{instance}"  # as seen inside the chroot
        self.conf = f"{self.home}/etc/asterisk.conf"
        self.child: Child | None = None

    def host_path(self, chroot_path: str) -> Path:
        """Where a path inside the chroot lives on the host."""
        return self.root / chroot_path.lstrip("/")

    @property
    def spool(self) -> Path:
        """The instance's spool directory, as seen from the host."""
        return self.host_path(f"{self.home}/spool")

    def _moddir(self) -> str:
        debian_conf = (self.root / "etc/asterisk/asterisk.conf").read_text()
        match = re.search(r"^astmoddir\s*=>\s*(\S+)", debian_conf, flags=re.MULTILINE)
        if not match:
            raise BenchError("astmoddir not found in the chroot's /etc/asterisk/asterisk.conf")
        return match.group(1)

    def _substitutions(self, creds: AsteriskCredentials) -> dict[str, str]:
        p = self.ports
        return {
            "INSTANCE": self.instance, "HOME": self.home, "MODDIR": self._moddir(),
            "DATADIR": self.datadir,
            "SIP_PORT": str(p.sip), "HTTP_PORT": str(p.http), "AMI_PORT": str(p.ami),
            "RTP_START": str(p.rtp_start), "RTP_END": str(p.rtp_end),
            "TRUNK_PORT": str(p.trunk), "AGENT_ANSWER_PORT": str(p.agent_answer),
            "AGENT_BUSY_PORT": str(p.agent_busy), "AGENT_NOANSWER_PORT": str(p.agent_noanswer),
            "AGENT_TRANSFER_PORT": str(p.agent_transfer),
            "AGENT_TRANSFER_OUT_PORT": str(p.agent_transfer_out), "OUTSIDE_PORT": str(p.outside),
            "AGENT_CONSULT_PORT": str(p.agent_consult),
            "AGENT_ATTENDED_PORT": str(p.agent_attended), "AGENT_PARK_PORT": str(p.agent_park),
            "AGENT_KEYS_PORT": str(p.agent_keys),
            "AGI_PORT": str(p.agi),
            "ARI_USER": creds.ari_user, "ARI_PASSWORD": creds.ari_password,
            "AMI_USER": creds.ami_user, "AMI_SECRET": creds.ami_secret,
        }

    def render(self, creds: AsteriskCredentials, fresh_spool: bool) -> None:
        """Write the instance's configuration and directories into the chroot."""
        uid, gid = chroot_user(self.root, "asterisk")
        home = self.host_path(self.home)
        etc = home / "etc"
        shutil.rmtree(etc, ignore_errors=True)
        if fresh_spool:  # a fresh run: no recordings or logs of earlier runs
            shutil.rmtree(home / "spool", ignore_errors=True)
            shutil.rmtree(home / "log", ignore_errors=True)
        for sub in ("etc", "cache", "lib", "spool/callrec", "run", "log/cdr-csv"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        if self.layout != "bench":
            admin_tree(self.root, etc, self.layout, self.ports.ami, gid)
            own_datadir(self.root, self.host_path(self.datadir))
        self._render_templates(etc, creds, gid)
        if self.layout == "bench":  # the layouts get callrec's files from callrec setup
            for include in sorted(DIALPLAN.rglob("*.conf")):  # features/ too (features.conf)
                target = etc / "callrec" / include.relative_to(DIALPLAN)
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_private(target, include.read_text(), gid)
            self.install_sounds()
        for sub in ("cache", "lib", "spool", "run", "log"):
            for path in [home / sub, *(home / sub).rglob("*")]:
                os.chown(path, uid, gid)

    def _render_templates(self, etc: Path, creds: AsteriskCredentials, gid: int) -> None:
        subs = self._substitutions(creds)
        for template in sorted(TEMPLATES.glob("*.conf")):
            if self.layout != "bench" and template.name in SETUP_OWNS:
                continue  # the admin's own (admin_tree): callrec setup adds its part
            text = template.read_text()
            for key, value in subs.items():
                text = text.replace(f"@{key}@", value)
            if re.search(r"@[A-Z_]+@", text):
                raise BenchError(f"unrendered placeholder left in {template.name}")
            name = template.name
            if self.layout != "bench" and name == "extensions.conf":
                text = text.replace('#include "callrec/*.conf"\n', "")
                name = "extensions_additional.conf" if self.layout == "freepbx" else name
            _write_private(etc / name, text, gid)

    @property
    def datadir(self) -> str:
        """astdatadir as Asterisk sees it: the shared one, or the instance's own for a layout
        that callrec setup installs the prompts into (testbench/admin.py own_datadir)."""
        return "/usr/share/asterisk" if self.layout == "bench" else f"{self.home}/share"

    def install_sounds(self) -> None:
        """The project's prompts, where Asterisk looks: <astdatadir>/sounds/<lang>/callrec/."""
        for lang_dir in sorted(SOUNDS.iterdir()):
            prompts = lang_dir / "callrec"
            if not prompts.is_dir():
                continue
            target = resolve_in_chroot(self.root, f"/usr/share/asterisk/sounds/{lang_dir.name}")
            shutil.copytree(prompts, target / "callrec", dirs_exist_ok=True)

    @property
    def cdr_csv(self) -> Path:
        """The CDRs of this instance (testbench/conf/cdr.conf), as the host sees them."""
        return self.host_path(f"{self.home}/log/cdr-csv/Master.csv")

    @property
    def recordings(self) -> Path:
        """callrec's spool (MixMonitor files, markers, manifests) as seen from the host."""
        return self.spool / "callrec"

    def log_text(self) -> str:
        """The instance's messages.log. Caller names are logged as received: not always UTF-8."""
        return self.host_path(f"{self.home}/log/messages.log").read_text(errors="replace")

    def played(self, channel: str, prompt: str) -> bool:
        """Whether Asterisk itself says it played ``prompt`` on ``channel`` (file.c, verbose 3:
        "<PJSIP/trunk-00000001> Playing 'callrec/notice.alaw' (language 'ja')")."""
        return self.plays(channel, prompt) > 0

    def log_mark(self) -> int:
        """Where the log ends now: channel names repeat after Asterisk restarts, so a test
        counts only what was logged after its mark."""
        return len(self.log_text())

    def plays(self, channel: str, prompt: str, since: int = 0) -> int:
        """How many times Asterisk says it started ``prompt`` on ``channel`` (after ``since``,
        a ``log_mark``)."""
        return self.log_text()[since:].count(f"<{channel}> Playing '{prompt}.")

    def start(self) -> Child:
        argv = ["chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n", "-C", self.conf,
                "-U", "asterisk", "-G", "asterisk"]
        self.child = Child(f"asterisk[{self.instance}]", argv,
                           self.log_dir / "asterisk.console.log", marker=self.conf)
        return self.child

    @property
    def command(self) -> list[str]:
        """Asterisk's CLI for this instance, as ``callrec setup --asterisk`` takes it."""
        return ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", self.conf]

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run an Asterisk CLI command through the instance's control socket."""
        result = subprocess.run(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", self.conf, "-rx", command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"asterisk -rx {command!r} failed: {result.stderr or result.stdout}")
        return result.stdout

    def wait_booted(self, timeout: float = 30.0) -> None:
        wait_until(lambda: "fully booted" in self.cli("core waitfullybooted").lower(),
                   f"asterisk[{self.instance}] boot", timeout, self.child)

    def wait_ready(self, creds: AsteriskCredentials, timeout: float = 30.0) -> None:
        """Wait until Asterisk is fully booted and ARI answers with our credentials."""
        self.wait_booted(timeout)
        url = f"http://127.0.0.1:{self.ports.http}/ari/asterisk/info"
        request = urllib.request.Request(url, headers=ari_auth(creds))

        def ari_ok() -> bool:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)

        wait_until(ari_ok, f"asterisk[{self.instance}] ARI", timeout, self.child)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def resolve_in_chroot(root: Path, path: str) -> Path:
    """Resolve ``path`` as the chroot sees it: absolute symlinks point inside ``root``.

    (The chroot's sounds/en is a link to /etc/alternatives/..., which on the host means the
    host's /etc.) The same resolution callrec setup makes for a ``--root`` (its Tree)."""
    return Tree(root).host(path)


def _write_private(path: Path, text: str, gid: int) -> None:
    """Config files hold this run's passwords: readable by root and the asterisk group only."""
    path.write_text(text)
    os.chown(path, 0, gid)
    path.chmod(0o640)


def ami_action(port: int, creds: AsteriskCredentials, fields: dict[str, str],
               timeout: float = 5.0) -> dict[str, str]:
    """One AMI action on a short-lived session (tests act as an operator or a feature code)."""

    def send(sock: socket.socket, action: dict[str, str]) -> None:
        sock.sendall("".join(f"{k}: {v}\r\n" for k, v in action.items()).encode() + b"\r\n")

    def reply(stream: Any) -> dict[str, str]:
        while True:  # skip events: the first block with a Response is ours
            block: dict[str, str] = {}
            for raw in stream:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if not line:
                    break
                key, _, value = line.partition(": ")
                block[key] = value
            if "Response" in block or not block:
                return block

    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        stream = sock.makefile("rb")
        stream.readline()  # the banner
        send(sock, {"Action": "Login", "Username": creds.ami_user, "Secret": creds.ami_secret,
                    "Events": "off"})
        if reply(stream).get("Response") != "Success":
            raise BenchError("AMI login refused")
        send(sock, fields)
        answer = reply(stream)
        send(sock, {"Action": "Logoff"})
        return answer
