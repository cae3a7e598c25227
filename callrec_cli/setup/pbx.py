"""What this Asterisk is: its version, directories, modules, HTTP and AMI listeners.

Asked of the running Asterisk (``asterisk -rx``: ``core show settings``, ``http show status``,
``manager show settings``, ``module show like``); when it is not running, read from
``asterisk.conf`` (then the modules cannot be checked and nothing is reloaded)."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field

from callrec_cli.setup import SetupError
from callrec_cli.setup.tree import Tree

log = logging.getLogger(__name__)

# What callrec uses (docs/admin.md, "Plugging callrec into an existing Asterisk"): the Stasis
# door over ARI and its websocket, MixMonitor, the FastAGI door, the CSV CDRs `reconcile` reads.
MODULES = ("res_ari.so", "res_stasis.so", "app_stasis.so", "res_http_websocket.so",
           "res_ari_channels.so", "res_ari_bridges.so", "res_ari_events.so",
           "app_mixmonitor.so", "res_agi.so", "cdr_csv.so", "func_cdr.so")
MIN_MAJOR = 20


@dataclass(frozen=True)
class Listener:
    enabled: bool
    host: str = ""
    port: int = 0


@dataclass
class Pbx:
    running: bool
    version: str
    etc: str
    spool: str
    data: str
    language: str = "en"
    http: Listener = field(default_factory=lambda: Listener(False))
    ami: Listener = field(default_factory=lambda: Listener(False))
    missing: list[str] = field(default_factory=list)

    @property
    def major(self) -> int:
        match = re.match(r"(?:GIT-)?(\d+)", self.version)
        return int(match.group(1)) if match else 0


class Asterisk:
    """The ``asterisk`` command of this host (or a chroot's, a container's: ``--asterisk``)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def rx(self, command: str, timeout: float = 15.0) -> str:
        try:
            result = subprocess.run([*self.argv, "-rx", command], capture_output=True,
                                    text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SetupError(f"cannot run {self.argv[0]}: {exc}") from exc
        if result.returncode != 0 or "Unable to connect to remote asterisk" in result.stdout:
            raise SetupError(f"asterisk -rx {command!r}: {(result.stderr or result.stdout)[:200]}")
        return result.stdout


def _field(text: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}:\s*(.*?)\s*$", text, flags=re.MULTILINE)
    return match.group(1) if match else ""


def _listener(text: str) -> Listener:
    match = re.search(r"(?:Bound to|Bindaddress:)\s*\[?([0-9a-fA-F.:]*?)\]?:(\d+)\s*$", text,
                      flags=re.MULTILINE)
    return Listener(True, match.group(1), int(match.group(2))) if match else Listener(True)


def probe(asterisk: Asterisk, tree: Tree, conf: str) -> Pbx:
    """Ask the running Asterisk; fall back to ``conf`` (asterisk.conf) if it is not running."""
    try:
        settings = asterisk.rx("core show settings")
    except SetupError as exc:
        log.warning("Asterisk is not running (%s): reading %s", exc, conf)
        return _from_conf(tree, conf)
    pbx = Pbx(True, _field(settings, "Version"), _field(settings, "Configuration directory"),
              _field(settings, "Spool directory"), _field(settings, "Data directory"),
              _field(settings, "Default language") or "en")
    http = asterisk.rx("http show status")
    pbx.http = _listener(http) if "Server Enabled" in http else Listener(False)
    ami = asterisk.rx("manager show settings")
    pbx.ami = _listener(ami) if re.search(r"Manager \(AMI\):\s*Yes", ami) else Listener(False)
    for module in MODULES:
        if "1 modules loaded" not in asterisk.rx(f"module show like {module}"):
            pbx.missing.append(module)
    return pbx


def _from_conf(tree: Tree, conf: str) -> Pbx:
    data = tree.read(conf)
    if data is None:
        raise SetupError(f"Asterisk is not running and there is no {conf}: is it installed?")
    dirs = dict(re.findall(r"^\s*(ast\w+dir)\s*=>?\s*(\S+)", data.decode(errors="replace"),
                           flags=re.MULTILINE))
    return Pbx(False, "", dirs.get("astetcdir", "/etc/asterisk"),
               dirs.get("astspooldir", "/var/spool/asterisk"),
               dirs.get("astdatadir", "/usr/share/asterisk"))


def refusals(pbx: Pbx) -> list[str]:
    """What setup cannot fix: it says so and changes nothing."""
    problems = []
    if pbx.running and pbx.major < MIN_MAJOR:
        problems.append(f"Asterisk {pbx.version or '?'}: callrec needs {MIN_MAJOR} or later")
    if pbx.missing:
        problems.append("modules not loaded: " + ", ".join(pbx.missing) + " (install them, or "
                        "remove their noload lines in modules.conf, then restart Asterisk)")
    return problems
