"""Settings of the call-flow service: one pydantic-settings object, env prefix ``CALLREC_``.

Nested sections use ``__`` in environment variables (``CALLREC_ARI__PASSWORD``); a TOML file
(``--config``) gives the same keys. Passwords are ``SecretStr``: never logged, never in URLs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from callrec.evidence.settings import EvidenceSettings
from callrec.manifest import Policy
from callrec.numbering import NumberingPlan
from callrec.s3.settings import S3Settings
from callrec.sections import Section
from callrec.settings import CallrecSettings, load
from callrec.webhooks.settings import WebhookSettings


class AriSettings(Section):
    url: str = "http://127.0.0.1:8088"  # Asterisk's http.conf address; /ari is appended
    user: str = "callrec"
    password: SecretStr = SecretStr("")
    app: str = "callrec"  # the name used in Stasis(callrec)
    # Send requests over the events websocket (Asterisk 22.2+/21.7+/20.12+ "REST over
    # Websocket") instead of one HTTP request each; HTTP is used while the websocket is down.
    rest_over_websocket: bool = True


class MetricsSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(9470, ge=0, le=65535)  # 0: no metrics endpoint


class AmiSettings(Section):
    host: str = "127.0.0.1"
    port: int = 5038
    user: str = "callrec"
    secret: SecretStr = SecretStr("")
    action_timeout_s: float = Field(2.0, gt=0)


class AgiSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"  # loopback only unless Asterisk runs elsewhere
    port: int = 4573


class SpoolSettings(Section):
    # Where Asterisk writes recordings (as Asterisk sees the path) ...
    asterisk_dir: Path = Path("/var/spool/asterisk/callrec")
    # ... and where this service sees the same directory (differs when Asterisk runs in a
    # chroot or container; defaults to the same path).
    local_dir: Path | None = None
    min_free_mb: int = Field(200, ge=0)

    @property
    def local(self) -> Path:
        return self.local_dir or self.asterisk_dir


class Route(Section):
    """Where a DID's calls go after the notice, and how strictly they must be recorded."""

    context: str
    extension: str = "s"
    priority: int = 1
    policy: Policy | None = None
    language: str | None = None
    # The app_queue queue this route leads to: its [queues] policy and language apply.
    queue: str | None = None
    stereo: bool | None = None  # None: the queue's rule, then [recording] stereo
    pause: bool | None = None  # payment pauses allowed; None: the queue's rule, then [pause]


class QueueRule(Section):
    """Recording policy, notice language and channel layout of calls routed to one queue."""

    policy: Policy | None = None
    language: str | None = None
    stereo: bool | None = None
    pause: bool | None = None  # False: a center that must keep every word of these calls


class RecordingSettings(Section):
    """How calls are recorded (ari_app/recorder.py, ari_app/rawfile.py)."""

    # The customer on the left channel, what they hear (agents, prompts) on the right:
    # MixMonitor's D option. A route or queue may say otherwise (their ``stereo``).
    stereo: bool = False
    # Before 22.11.0 (20.21.0, 23.5.0) D garbles calls on codecs that are not 8 kHz (Asterisk
    # issue #1779, fixed by commit 6144b6b): such a PBX records mono and the manifest says why,
    # unless its admin vouches that every codec on it is 8 kHz (G.711, G.729, GSM).
    stereo_on_8k_only_pbx: bool = False
    # After each call: is anyone heard after the notice? (per channel in stereo; webrtcvad)
    audio_check: bool = True
    # Less speech than this on a side, after the notice, and that side counts as silent.
    min_speech_s: float = Field(1.0, ge=0)
    # webrtcvad's aggressiveness, 0-3: higher calls less noise speech.
    vad_aggressiveness: int = Field(3, ge=0, le=3)


class AgentEntry(Section):
    """One agent in the directory: who answers on an endpoint or extension."""

    id: str = Field(min_length=1, max_length=64)
    name: str = Field("", max_length=128)


class NoticeSettings(Section):
    prompt: str = "callrec/notice"  # sound name, under <sounds>/<lang>/
    unavailable_prompt: str = "callrec/unavailable"  # played before hang-up under policy force
    default_language: str = "ja"
    verify_timeout_s: float = Field(1.0, gt=0)  # MixMonitor must prove it records within this
    close_timeout_s: float = Field(30.0, gt=0)  # after hang-up, wait this long for the file
    # The recording's file not growing for this long while the call is up = interrupted (a full
    # disk: MixMonitor keeps the file open and drops what it cannot write). 0 = off; raise it
    # where phones stop sending audio in silence (VAD/DTX) and Asterisk plays nothing.
    stall_alert_s: float = Field(10.0, ge=0)


class BridgeSettings(Section):
    """The safety net (ari_app/bridges.py): two-party bridges callrec did not handle."""

    watch: bool = True
    # Endpoint names (fnmatch) of trunks: a bridge with a party on one is external.
    trunks: list[str] = Field(default_factory=lambda: ["trunk*"])
    # Internal calls (no trunk party): "never" = not recorded, ledger reason internal_call;
    # "force"/"optional" = they should have been routed through callrec (ledger says not).
    internal_policy: Policy = Policy.NEVER
    # The policy external calls that bypassed callrec are listed under.
    external_policy: Policy = Policy.FORCE


class AgentKeySettings(Section):
    """The agents' hot-keys against abusive callers (ari_app/hotkeys.py; the keys themselves are
    features.conf's, dialplan/callrec-agent-keys.conf.sample)."""

    # Played to the caller on "warn": it says the call is recorded, so only while the call's
    # recording is verified and still running (the notice's gate).
    warning_prompt: str = "callrec/warning"
    closing_prompt: str = "callrec/closing"  # played before "end" hangs the caller up
    refusal_tone: str = "beeperr"  # what the agent hears when callrec refuses (core sound)
    end_requires_warning: bool = True  # "end" only after a warning on this call
    end_outcome: str = Field("harassment", pattern=r"^[a-z0-9_]{1,32}$")


class PauseSettings(Section):
    """Payment pauses: card details kept out of the recording (ari_app/pause.py)."""

    enabled: bool = True  # a route or queue may say otherwise (their ``pause``)
    max_s: float = Field(180.0, gt=0, le=3600)  # then it resumes by itself
    # Played to the caller once the recording is muted (it says recording is paused) ...
    paused_prompt: str = "callrec/paused"
    # ... and once it is proven to record again (it says the call is recorded again: only
    # through the notice's gate, never while that is not proven).
    resumed_prompt: str = "callrec/resumed"
    # After the unmute, the file must be seen growing within this (a writer that still writes).
    # Asterisk writes recordings through a 32 KiB stdio buffer (main/file.c ast_writefile,
    # setvbuf): the file grows in steps of 2 s of 8 kHz mono, 1 s of stereo.
    prove_timeout_s: float = Field(5.0, gt=0, le=30)


class ApiSettings(Section):
    """callrec's control API for payment screens and CRMs (ari_app/control.py): pause and resume
    a call's recording by its id. Bearer token auth; loopback unless a proxy fronts it."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)  # 0: no control API
    token: SecretStr = SecretStr("")  # required when port is set (at least 16 characters)

    @model_validator(mode="after")
    def _token_when_served(self) -> ApiSettings:
        if self.port and len(self.token.get_secret_value()) < 16:
            raise ValueError("api.token must be set (16 characters or more) when api.port is")
        return self


class MarkSettings(Section):
    """Marked callers (callrec/s3/marks.py), read from the bucket the archive writes them to."""

    enabled: bool = False  # needs the [s3] section (read access to marks/ is enough)
    refresh_s: float = Field(30.0, ge=1)  # a new mark reaches this host within this delay
    # Treatment "supervisor": where such calls go instead of the DID's route.
    supervisor_route: Route | None = None
    refusal_prompt: str = "callrec/refused"  # treatment "refuse": played before the hang-up


class AriAppSettings(CallrecSettings):
    ari: AriSettings = AriSettings()
    ami: AmiSettings = AmiSettings()
    metrics: MetricsSettings = MetricsSettings()
    agi: AgiSettings = AgiSettings()
    spool: SpoolSettings = SpoolSettings()
    notice: NoticeSettings = NoticeSettings()
    recording: RecordingSettings = RecordingSettings()
    bridges: BridgeSettings = BridgeSettings()
    agent_keys: AgentKeySettings = AgentKeySettings()
    pause: PauseSettings = PauseSettings()
    api: ApiSettings = ApiSettings()
    webhooks: WebhookSettings = WebhookSettings()  # events for other systems (callrec/webhooks)
    marks: MarkSettings = MarkSettings()
    s3: S3Settings = S3Settings()  # only for marks
    evidence: EvidenceSettings = EvidenceSettings()  # sealed manifests (callrec/evidence/)
    numbering: NumberingPlan = NumberingPlan()  # caller numbers as the archive writes marks
    policy: Policy = Policy.OPTIONAL
    default_route: Route | None = None
    routes: dict[str, Route] = Field(default_factory=dict)  # DID -> route
    queues: dict[str, QueueRule] = Field(default_factory=dict)  # queue name -> rule
    # Endpoint (PJSIP/agent-07 -> "agent-07"), extension ("1001") or app_agent_pool agent id
    # -> the agent: who the manifest, the S3 agent tag and the archive name.
    agents: dict[str, AgentEntry] = Field(default_factory=dict)

    @field_validator("routes")
    @classmethod
    def _dids_are_plain(cls, routes: dict[str, Route]) -> dict[str, Route]:
        for did in routes:
            if not did or len(did) > 64 or not all(c.isalnum() or c in "+-_." for c in did):
                raise ValueError(f"route key {did!r} is not a DID")
        return routes

    # Seconds a stop waits for calls in their notice to reach the hand-off: below the unit's
    # TimeoutStopSec (deploy/callrec-ari.service: 60). A second signal stops at once.
    shutdown_grace_s: float = Field(45.0, ge=0)


def load_settings(toml_file: Path | None = None) -> AriAppSettings:
    """Environment wins over the TOML file, which wins over defaults."""
    return load(AriAppSettings, toml_file)
