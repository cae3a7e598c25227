"""``callrec check``: can this host take calls honestly? A report, non-zero exit on problems."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from ari_app.ami import AmiClient, AmiError
from ari_app.ari import AriClient, AriError
from ari_app.config import AriAppSettings
from ari_app.rawfile import stereo_refusal
from ari_app.recorder import spool_problem
from callrec.webhooks.outbox import Outbox
from callrec.webhooks.settings import WebhookSettings


@dataclass
class Finding:
    ok: bool
    what: str
    detail: str


async def run_checks(settings: AriAppSettings) -> list[Finding]:
    findings: list[Finding] = []
    problem = spool_problem(settings.spool)
    findings.append(Finding(problem is None, "spool", problem[1] if problem else
                            f"{settings.spool.local} writable, free space above "
                            f"{settings.spool.min_free_mb} MB"))
    findings.append(_check_close_proof())
    findings.append(check_header_repair(settings.spool.local))
    findings.append(check_webhooks(settings.webhooks))
    findings += await _check_ari(settings)
    findings += await _check_ami(settings)
    return findings


CAP_LEASE = 28  # linux/capability.h


def _check_close_proof() -> Finding:
    """The lease probe (ari_app/closewatch.py) needs CAP_LEASE on files Asterisk owns. Without
    it callrec relies on inotify alone, and a recording closed while callrec was down (restart)
    cannot be proven complete: its manifest then says recording_not_closed."""
    status = Path("/proc/self/status").read_text()
    cap_eff = int(next((line.split()[1] for line in status.splitlines()
                        if line.startswith("CapEff:")), "0"), 16)
    leases = Path("/proc/sys/fs/leases-enable")
    enabled = not leases.exists() or leases.read_text().strip() == "1"
    if enabled and (os.geteuid() == 0 or cap_eff & (1 << CAP_LEASE)):
        return Finding(True, "recording close proof", "inotify + lease probe (CAP_LEASE)")
    why = "fs.leases-enable is 0" if not enabled else "no CAP_LEASE"
    return Finding(True, "recording close proof",
                   f"inotify only ({why}); see AmbientCapabilities in deploy/callrec-ari.service")


def check_webhooks(settings: WebhookSettings) -> Finding:
    """The outbox can take events (an emit that cannot write holds up the manifest behind it,
    ari_app/ending.py). No receiver is contacted: a check sends no event."""
    if not settings.enabled:
        return Finding(True, "webhooks", "no endpoint configured")
    outbox = Outbox(settings)
    try:
        for name in settings.endpoints:
            outbox.directory(name)
    except OSError as exc:
        return Finding(False, "webhooks", f"outbox {settings.outbox} not usable: {exc}")
    if not os.access(settings.outbox, os.W_OK):
        return Finding(False, "webhooks", f"outbox {settings.outbox} not writable by callrec")
    counts = ", ".join(f"{name} ({len(outbox.pending(name))} pending, "
                       f"{len(outbox.dead(name))} dead)" for name in settings.endpoints)
    return Finding(True, "webhooks", f"outbox {settings.outbox} writable; {counts}")


def check_header_repair(spool: Path) -> Finding:
    """Whether callrec may finish the WAV header of a recording Asterisk died writing
    (ari_app/wavfile.py repair_header), judged on the newest recording in the spool.
    Informational: without it such a recording is archived as Asterisk left it."""
    what = "crash header repair"
    try:
        newest = max(spool.glob("*.wav"), key=lambda p: p.stat().st_mtime, default=None)
    except OSError as exc:
        return Finding(True, what, f"not checked: {exc}")
    if newest is None:
        return Finding(True, what, "no recording in the spool yet to judge by")
    if os.access(newest, os.W_OK):
        return Finding(True, what, f"possible ({newest.name} is writable by callrec)")
    return Finding(True, what, f"not possible: {newest.name} is not writable by callrec; give "
                               "Asterisk UMask=0007 (docs/admin.md, Spool)")


async def _check_ari(settings: AriAppSettings) -> list[Finding]:
    ari = AriClient(settings.ari)
    await ari.start()
    try:
        info = await ari.request("GET", "/asterisk/info")
        version = info.get("system", {}).get("version")
        found = [Finding(True, "ARI", f"{settings.ari.url}: Asterisk {version or '?'}"),
                 check_stereo(settings, version)]
        apps = {a["name"] for a in await ari.request("GET", "/applications")}
        running = settings.ari.app in apps
        found.append(Finding(True, "Stasis app", f"{settings.ari.app!r} "
                             + ("registered (callrec ari is running)" if running else
                                "not registered yet (callrec ari not running)")))
        needed = {settings.notice.default_language,
                  *(r.language for r in settings.routes.values() if r.language),
                  *(q.language for q in settings.queues.values() if q.language)}
        keys = settings.agent_keys
        marks = (settings.marks.refusal_prompt,) if settings.marks.enabled else ()
        pause = settings.pause
        pauses = (pause.paused_prompt, pause.resumed_prompt) if pause.enabled or any(
            r.pause for r in settings.routes.values()) or any(
            q.pause for q in settings.queues.values()) else ()
        for prompt in (settings.notice.prompt, settings.notice.unavailable_prompt,
                       keys.warning_prompt, keys.closing_prompt, *marks, *pauses):
            have = await ari.sound_languages(prompt)
            missing = sorted(needed - have)
            found.append(Finding(not missing, f"prompt {prompt}",
                                 f"installed for {sorted(have) or 'no language'}"
                                 + (f"; missing for {missing}" if missing else "")))
        return found
    except AriError as exc:
        return [Finding(False, "ARI", str(exc))]
    finally:
        await ari.close()


def check_stereo(settings: AriAppSettings, version: str | None) -> Finding:
    """Informational: whether calls configured for stereo get it on this Asterisk."""
    asked = settings.recording.stereo or any(r.stereo for r in settings.routes.values()) \
        or any(q.stereo for q in settings.queues.values())
    refused = stereo_refusal(version, settings.recording.stereo_on_8k_only_pbx)
    detail = "possible" if refused is None else f"recorded mono: {refused}"
    return Finding(True, "stereo recording", detail if asked else f"not configured ({detail})")


async def _check_ami(settings: AriAppSettings) -> list[Finding]:
    ami = AmiClient(settings.ami)
    try:
        await ami.connect()
    except AmiError as exc:
        return [Finding(False, "AMI", str(exc))]
    found = [Finding(True, "AMI", f"{settings.ami.host}:{settings.ami.port} logged in")]
    try:
        for module in ("app_mixmonitor", "res_stasis", "app_stasis", "res_ari"):
            try:
                await ami.action({"Action": "ModuleCheck", "Module": module})
                found.append(Finding(True, f"module {module}", "loaded"))
            except AmiError as exc:
                found.append(Finding(False, f"module {module}", str(exc)))
    finally:
        ami.close()
    return found


def report(settings: AriAppSettings) -> tuple[str, bool]:
    findings = asyncio.run(run_checks(settings))
    lines = [f"{'ok ' if f.ok else 'FAIL'} {f.what:<28} {f.detail}" for f in findings]
    return "\n".join(lines), all(f.ok for f in findings)
