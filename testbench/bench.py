"""The whole bench for one instance: Asterisk in the chroot, weed mini, agent phones.

``Bench.up()`` starts everything and waits until each part is ready; ``Bench.down()`` stops what it
started, by PID. Used in-process by the pytest fixtures, and detached by ``python -m testbench up``
(``make sandbox-up``), which records the PIDs and the run's endpoints in the instance's state dir so
that ``down`` - possibly from another process - stops exactly those processes.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from testbench import BenchError
from testbench.asterisk import PRESETS, REPO, Asterisk, AsteriskCredentials
from testbench.baresip import BaresipPhone
from testbench.callrec_app import CallrecApp, callrec_env
from testbench.chroot import cache_dir, ensure_chroot, require_root
from testbench.endpoints import Endpoints
from testbench.procs import Child, stop_recorded, wait_until
from testbench.s3 import WeedMini
from testbench.sipp import (
    AGENT_KINDS,
    TRUNK_IP,
    AgentPhone,
    Caller,
    KeysPhone,
    make_audio,
    make_voice,
)

log = logging.getLogger(__name__)


def state_dir(instance: str) -> Path:
    return cache_dir() / "state" / instance


class Bench:
    def __init__(self, instance: str = "test", layout: str = "bench") -> None:
        if instance not in PRESETS:
            raise BenchError(f"unknown bench instance {instance!r}; one of {sorted(PRESETS)}")
        self.instance = instance
        self.layout = layout  # testbench/admin.py: "stock" and "freepbx" wait for callrec setup
        self.ports = PRESETS[instance]
        self.state = state_dir(instance)
        self.log_dir = self.state / "log"
        self.timings: dict[str, float] = {}
        self.children: list[Child] = []
        self.asterisk: Asterisk | None = None
        self.s3: WeedMini | None = None
        self.agents: dict[str, AgentPhone] = {}
        self.endpoints: Endpoints | None = None
        self.agent_kinds: tuple[str, ...] = AGENT_KINDS
        self.quiet_agent = False

    def _timed(self, phase: str, started: float) -> None:
        self.timings[phase] = time.monotonic() - started
        log.info("bench[%s] %s: %.2f s", self.instance, phase, self.timings[phase])

    def up(self, agents: tuple[str, ...] = AGENT_KINDS, quiet_agent: bool = False) -> Endpoints:
        """Start the instance with these SIPp agent phones; ``quiet_agent``: agent-answer is
        baresip instead (testbench/baresip.py: an idle SIPp polls every millisecond, and the
        demo stays up)."""
        require_root("the bench (chroot + Asterisk)")
        self.agent_kinds, self.quiet_agent = agents, quiet_agent
        self.down()  # whatever an earlier run of this instance left behind
        shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.state.chmod(0o700)
        started = time.monotonic()
        root = ensure_chroot()
        self._timed("chroot", started)
        try:
            self.endpoints = self._start(root)
        except BaseException:
            self.down()
            raise
        path = self.state / "bench.json"
        path.write_text(json.dumps(asdict(self.endpoints), indent=2))
        path.chmod(0o600)
        return self.endpoints

    def attach(self, endpoints: Endpoints) -> None:
        """Use an instance another process brought up (``make demo-call``): its processes stay
        that process's (``down`` still stops them, from their pid files)."""
        self.endpoints = endpoints
        self.asterisk = Asterisk(ensure_chroot(), self.instance, self.ports, self.log_dir)

    def _start(self, root: Path) -> Endpoints:
        creds = AsteriskCredentials("callrec-ari", secrets.token_urlsafe(24),
                                    "callrec-ami", secrets.token_urlsafe(24))
        started = time.monotonic()
        self.asterisk = Asterisk(root, self.instance, self.ports, self.log_dir, self.layout)
        self.asterisk.render(creds, fresh_spool=True)
        self._track("asterisk", self.asterisk.start())
        self.s3 = WeedMini(self.state / "s3-data", self.ports.s3)
        shutil.rmtree(self.s3.data_dir, ignore_errors=True)  # a data dir per run
        # ... and the key and chain that seal this run's calls (its spool and bucket are new)
        shutil.rmtree(self.state / "evidence", ignore_errors=True)
        self._track("s3", self.s3.start(self.log_dir))
        for offset, kind in enumerate(AGENT_KINDS):
            if kind not in self.agent_kinds:
                continue
            phone = AgentPhone(kind, getattr(self.ports, f"agent_{kind}"),
                               self.ports.agent_media + 4 * offset, self.log_dir)
            self._track(phone.name, phone.start())
            self.agents[kind] = phone
        if self.quiet_agent:
            quiet = BaresipPhone("agent-answer", self.ports.agent_answer,
                                 (self.ports.agent_media, self.ports.agent_media + 99),
                                 self.state / "baresip", self.log_dir)
            self._track(quiet.name, quiet.start())
        if self.layout == "bench":
            self.asterisk.wait_ready(creds)
        else:  # no ARI user until callrec setup adds one (the test then knows its secrets)
            self.asterisk.wait_booted()
        self._timed("asterisk", started)
        self.s3.wait_ready()
        self._timed("s3", started)
        for phone in self.agents.values():
            assert phone.child is not None
            phone.child.fail_if_dead()
        return Endpoints(
            instance=self.instance, ari_url=f"http://127.0.0.1:{self.ports.http}",
            ami_host="127.0.0.1", ami_port=self.ports.ami, sip_port=self.ports.sip,
            s3_endpoint=self.s3.endpoint, spool=str(self.asterisk.spool),
            asterisk=creds, s3=self.s3.creds,
        )

    def _track(self, name: str, child: Child) -> None:
        self.children.append(child)
        child.record.save(self.state / f"{name}.pid")

    def start_callrec(self, **overrides: str) -> CallrecApp:
        """``callrec ari`` on this instance with CALLREC_* overrides, tracked like the other
        processes (so ``down`` stops it even after the test run that started it was killed)."""
        assert self.endpoints is not None and self.asterisk is not None
        env = callrec_env(self.endpoints, self.asterisk.home, self.asterisk.recordings,
                          **{"CALLREC_AGI__PORT": str(self.ports.agi),
                             "CALLREC_EVIDENCE__DIR": str(self.state / "evidence"),
                             "CALLREC_EVIDENCE__HOST": f"bench-{self.instance}", **overrides})
        app = CallrecApp(self.endpoints, env, self.log_dir)
        self._track("callrec-ari", app.start())
        return app

    def service_env(self, bucket: str, work: Path, host: str,
                    **overrides: str) -> dict[str, str]:
        """The environment of the uploader, the archive and ``callrec keys``/``reconcile``
        beside a ``callrec ari`` that seals as ``host`` with its key under ``work`` (secrets via
        the environment). Calls' objects are under GOVERNANCE (a test may bypass it),
        checkpoints under COMPLIANCE, as shipped."""
        ep, asterisk = self.endpoints, self.asterisk
        assert ep is not None and asterisk is not None
        return {"PATH": "/usr/bin:/bin", "CALLREC_S3__ENDPOINT": ep.s3_endpoint,
                "CALLREC_S3__ACCESS_KEY": ep.s3.access_key,
                "CALLREC_S3__SECRET_KEY": ep.s3.secret_key, "CALLREC_S3__BUCKET": bucket,
                "CALLREC_UPLOAD__SPOOL": str(asterisk.recordings),
                "CALLREC_UPLOAD__METRICS_PORT": "0", "CALLREC_RETENTION__MODE": "GOVERNANCE",
                "CALLREC_RETENTION__DAYS": "1", "CALLREC_EVIDENCE__DIR": str(work / "evidence"),
                "CALLREC_EVIDENCE__HOST": host, "CALLREC_EVIDENCE__CHECKPOINT_DAYS": "1",
                "CALLREC_EVIDENCE__CHECKPOINT_INTERVAL_S": "1",
                "CALLREC_ARCHIVE__CATALOG": str(work / "catalog.sqlite3"),
                "CALLREC_ARCHIVE__SPOOL": str(asterisk.recordings),
                "CALLREC_RECONCILE__CDR": str(asterisk.cdr_csv), **overrides}

    def start_archive_web(self, env: dict[str, str], timeout: float = 15.0) -> Child:
        """``callrec archive serve`` with this environment, tracked like the other processes."""
        return self._start_service("callrec-archive", ["archive", "serve"], env,
                                   "archive web UI on", timeout)

    def start_uploader(self, env: dict[str, str], timeout: float = 15.0) -> Child:
        """``callrec upload`` (the daemon) with this environment, tracked likewise."""
        return self._start_service("callrec-upload", ["upload"], env, "uploader: spool",
                                   timeout)

    def _start_service(self, name: str, args: list[str], env: dict[str, str], ready: str,
                       timeout: float) -> Child:
        child = Child(name, [sys.executable, "-m", "callrec_cli", *args],
                      self.log_dir / f"{name}.log", marker="callrec_cli", env=env)
        try:
            wait_until(lambda: ready in child.own_log(), name,
                       timeout, child)
        except BaseException:
            child.stop()
            raise
        self._track(name, child)
        return child

    def restart_s3(self) -> None:
        """Start weed again on the same data dir and credentials (after an outage test)."""
        assert self.s3 is not None
        self._track("s3", self.s3.start(self.log_dir))
        self.s3.wait_ready()

    def crash_asterisk(self, down_s: float = 1.0) -> None:
        """kill -9 Asterisk (a PBX crash), then start it again on the same configuration and
        credentials, as systemd's Restart= would."""
        assert self.asterisk is not None and self.asterisk.child is not None
        assert self.endpoints is not None
        self.asterisk.child.proc.kill()
        self.asterisk.child.proc.wait()
        time.sleep(down_s)
        self._track("asterisk", self.asterisk.start())
        self.asterisk.wait_ready(self.endpoints.asterisk)

    def tone(self, freq: int) -> Path:
        """A tone to say, at another pitch than the caller's 440 Hz (testbench/audio.py
        tone_dbfs tells the two apart)."""
        path = self.state / f"tone-{freq}.wav"
        if not path.exists():
            make_audio(path, freq=freq)
        return path

    def voice(self, prompt: str = "en/callrec/warning") -> Path:
        """A party that talks: one of the product's recorded prompts, looped."""
        path = self.state / f"voice-{prompt.replace('/', '-')}.wav"
        if not path.exists():
            make_voice(path, REPO / "sounds" / f"{prompt}.wav")
        return path

    def silence(self) -> Path:
        """Caller audio that is silent: what is heard in a recording is then the PBX's side."""
        path = self.state / "caller-silence.wav"
        if not path.exists():
            make_audio(path, volume=0)
        return path

    def caller(self) -> Caller:
        audio = self.state / "caller-audio.wav"
        if not audio.exists():
            make_audio(audio)
        return Caller(self.ports.sip, self.ports.trunk, self.ports.caller_media[0], audio,
                      self.log_dir / "callers")

    def second_caller(self) -> Caller:
        """Another trunk caller (same address, other ports): calls while the first is busy."""
        audio = self.state / "caller-audio.wav"
        if not audio.exists():
            make_audio(audio)
        return Caller(self.ports.sip, self.ports.trunk + 20, self.ports.caller_media[0] + 4000,
                      audio, self.log_dir / "second-callers")

    def agent_caller(self) -> Caller:
        """An agent phone placing calls (From user = its endpoint name, from 127.0.0.1)."""
        audio = self.state / "caller-audio.wav"
        if not audio.exists():
            make_audio(audio)
        return Caller(self.ports.sip, self.ports.trunk + 10, self.ports.caller_media[0] + 2500,
                      audio, self.log_dir / "agent-callers", local_ip="127.0.0.1")

    def start_customer(self, outside: bool = False) -> AgentPhone:
        """A customer's phone behind the trunk (127.0.0.2 at the trunk's port; the trunk caller
        uses the same address, so not both at once), or with ``outside`` an outside party's
        behind trunk2. It answers and says nothing."""
        name = "outside" if outside else "customer"
        port = self.ports.outside if outside else self.ports.trunk
        phone = AgentPhone("answer", port, self.ports.agent_media + (44 if outside else 40),
                           self.log_dir, ip=TRUNK_IP, echo=False, name=name)
        self._track(name, phone.start())
        return phone

    def start_keys_phone(self, keys: list[tuple[float, str]], audio: Path | None = None,
                         ) -> KeysPhone:
        """The agent-keys phone (DIDs 9012, 8012), pressing ``keys`` (pause s, digits) after it
        answers, and saying ``audio`` (an A-law WAV, looped) if given."""
        phone = KeysPhone(self.ports.agent_keys, self.ports.agent_media + 60, self.log_dir,
                          keys, audio)
        self._track("agent-keys", phone.start())
        time.sleep(0.3)  # SIPp binds its port
        return phone

    def down(self) -> list[str]:
        """Stop every process this instance started (this object's, or recorded on disk)."""
        stopped = []
        for child in reversed(self.children):
            child.stop()
            stopped.append(child.name)
        self.children.clear()
        for pid_file in sorted(self.state.glob("*.pid")) if self.state.exists() else []:
            if stop_recorded(pid_file, pid_file.stem):
                stopped.append(pid_file.stem)
        (self.state / "bench.json").unlink(missing_ok=True)
        return stopped
