"""Run ``callrec ari`` against a bench instance, as a real process (as admins run it)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from testbench.asterisk import ari_auth
from testbench.procs import Child, free_port, wait_until

if TYPE_CHECKING:
    from testbench.endpoints import Endpoints

# DIDs the bench routes into callrec (testbench/conf/extensions.conf), and where each continues.
ROUTES: dict[str, dict[str, str]] = {
    "9001": {"context": "callrec-sandbox-route", "extension": "answer"},
    "9002": {"context": "callrec-sandbox-route", "extension": "busy"},
    "9003": {"context": "callrec-sandbox-route", "extension": "noanswer"},
    "9004": {"context": "callrec-sandbox-route", "extension": "outcome"},
    "9005": {"context": "callrec-sandbox-route", "extension": "answer", "policy": "force"},
    "9006": {"context": "callrec-sandbox-route", "extension": "answer", "policy": "never"},
    "9007": {"context": "callrec-sandbox-route", "extension": "answer", "language": "en"},
    "9008": {"context": "callrec-sandbox-route", "extension": "transfer"},
    "9009": {"context": "callrec-sandbox-route", "extension": "transfer-out"},
    "9010": {"context": "callrec-sandbox-route", "extension": "consult"},
    "9011": {"context": "callrec-sandbox-route", "extension": "attended"},
    "9012": {"context": "callrec-sandbox-route", "extension": "keys"},
    "8012": {"context": "callrec-sandbox-route", "extension": "keys"},
    "9013": {"context": "callrec-sandbox-route", "extension": "payment"},
    "8013": {"context": "callrec-sandbox-route", "extension": "payment"},
    "8001": {"context": "callrec-sandbox-route", "extension": "answer"},
    "8005": {"context": "callrec-sandbox-route", "extension": "answer", "policy": "force"},
}
# Queue DIDs (testbench/conf/queues.conf): 91xx through the Stasis door, 81xx through FastAGI.
_QUEUE_DIDS = {"01": "support", "02": "sales", "03": "local", "04": "agents", "05": "nobody",
               "06": "transfers", "07": "attended", "08": "parking", "09": "private",
               "10": "compliance", "11": "crowded"}
for _n, _queue in _QUEUE_DIDS.items():
    for _door in ("91", "81"):
        ROUTES[_door + _n] = {"context": "callrec-sandbox-queue", "extension": _queue,
                              "queue": _queue}
# Per-queue policy and language (callrec's [queues] settings).
QUEUES: dict[str, dict[str, str]] = {"private": {"policy": "never"},
                                     "compliance": {"policy": "force"}}


CALLREC_NICE = -5  # the shipped unit's Nice=


def callrec_env(ep: Endpoints, chroot_home: str, recordings: Path,
                **overrides: str) -> dict[str, str]:
    """Environment for ``callrec ari`` on this bench (secrets via env, never argv or URLs)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CALLREC_ARI__URL": ep.ari_url,
        "CALLREC_ARI__USER": ep.asterisk.ari_user,
        "CALLREC_ARI__PASSWORD": ep.asterisk.ari_password,
        "CALLREC_AMI__HOST": ep.ami_host,
        "CALLREC_AMI__PORT": str(ep.ami_port),
        "CALLREC_AMI__USER": ep.asterisk.ami_user,
        "CALLREC_AMI__SECRET": ep.asterisk.ami_secret,
        "CALLREC_SPOOL__ASTERISK_DIR": f"{chroot_home}/spool/callrec",
        "CALLREC_SPOOL__LOCAL_DIR": str(recordings),
        "CALLREC_SPOOL__MIN_FREE_MB": "10",
        "CALLREC_NOTICE__DEFAULT_LANGUAGE": "ja",
        "CALLREC_POLICY": "optional",
        "CALLREC_ROUTES": json.dumps(ROUTES),
        "CALLREC_QUEUES": json.dumps(QUEUES),
        "CALLREC_METRICS__PORT": "0",  # a free port at each start (the readiness probe)
    }
    env.update(overrides)
    return env


class CallrecApp:
    def __init__(self, ep: Endpoints, env: dict[str, str], log_dir: Path,
                 config: Path | None = None) -> None:
        self.ep = ep
        self.env = env
        self.config = config  # a TOML file (callrec setup's), beside the environment
        self.log_dir = log_dir
        self.child: Child | None = None
        self.metrics_port = 0

    def start(self, timeout: float = 15.0) -> Child:
        argv = [sys.executable, "-m", "callrec_cli", "ari"]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        if os.geteuid() == 0:
            # As deployed (deploy/callrec-ari.service, Nice=-5): on a saturated box the call
            # flow must not queue behind Asterisk's media threads.
            argv = ["nice", "-n", str(CALLREC_NICE), *argv]
        # Ready is what the new process itself says on its metrics endpoint (events websocket
        # up, calls resynced: callrec_ari_in_sight 1), with ARI listing the app: Asterisk keeps
        # listing an app whose websocket dropped, so the listing alone says nothing of this run.
        env = dict(self.env)
        if env.get("CALLREC_METRICS__PORT", "0") == "0":
            env["CALLREC_METRICS__PORT"] = str(free_port())
        self.metrics_port = int(env["CALLREC_METRICS__PORT"])
        self.child = Child("callrec-ari", argv, self.log_dir / "callrec-ari.log",
                           marker="callrec_cli", env=env)
        try:
            wait_until(lambda: self.in_sight() and self.registered(), "callrec Stasis app",
                       timeout, self.child)
        except BaseException:
            self.child.stop()  # never leave a half-started app behind
            raise
        return self.child

    def in_sight(self) -> bool:
        """This process's ``callrec_ari_in_sight`` gauge is 1 (ari_app/metrics.py)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:  # not listening yet
            return False
        return any(line.split() == ["callrec_ari_in_sight", "1.0"]
                   for line in text.splitlines())

    def registered(self) -> bool:
        """The app shows up in ARI once its websocket is connected."""
        request = urllib.request.Request(f"{self.ep.ari_url}/ari/applications/callrec",
                                         headers=ari_auth(self.ep.asterisk))
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:
            exc.close()
            return False

    def log_text(self) -> str:
        return (self.log_dir / "callrec-ari.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=40)
