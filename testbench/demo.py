"""``make demo``: the whole pipeline on the sandbox, left running until ``make sandbox-down``.

callrec ari, the uploader daemon (with the archive catalog fed as it ships) and the archive web UI
run as they would on a PBX host; one real call is placed through them and followed until it is in
the archive. Then anyone can place more (``make demo-call``, or a softphone as the trunk).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

from testbench.bench import Bench, state_dir
from testbench.endpoints import Endpoints

WEB_PORT = 8480
# The demo's DIDs ring agent-answer, which is baresip there (9101 and 8101 through the queue
# "support", where it is the member Sato Hanako; 9001 and 8001 by a plain Dial) (an idle SIPp polls
# every millisecond: about 2 % of a core); the tests' other SIPp phones are not started.
DEMO_AGENTS: tuple[str, ...] = ()


def service_env(ep: Endpoints, catalog: Path, spool: Path) -> dict[str, str]:
    """What the uploader and the archive share: the bucket and the catalog (secrets via the
    environment, never argv or URLs)."""
    return {"PATH": "/usr/bin:/bin", "CALLREC_S3__ENDPOINT": ep.s3_endpoint,
            "CALLREC_S3__BUCKET": "callrec", "CALLREC_S3__ACCESS_KEY": ep.s3.access_key,
            "CALLREC_S3__SECRET_KEY": ep.s3.secret_key,
            "CALLREC_UPLOAD__SPOOL": str(spool), "CALLREC_UPLOAD__AFTER_UPLOAD": "move",
            "CALLREC_UPLOAD__CATALOG": str(catalog), "CALLREC_UPLOAD__METRICS_PORT": "0",
            "CALLREC_ARCHIVE__CATALOG": str(catalog), "CALLREC_ARCHIVE__SPOOL": str(spool),
            # The key and chain callrec ari seals with on this bench (Bench.start_callrec).
            "CALLREC_EVIDENCE__DIR": str(state_dir(ep.instance) / "evidence"),
            "CALLREC_EVIDENCE__HOST": f"bench-{ep.instance}"}


def start_pipeline(bench: Bench) -> str:
    """callrec ari, the uploader daemon and the archive web UI; returns the demo password."""
    from archive.auth import hash_password
    from testbench.s3 import create_locked_bucket, s3_client

    ep, asterisk = bench.endpoints, bench.asterisk
    assert ep is not None and asterisk is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    create_locked_bucket(client, "callrec")
    client.close()
    app = bench.start_callrec()
    print(f"\ncallrec ari is running (log: {app.log_dir / 'callrec-ari.log'})")
    env = service_env(ep, state_dir(ep.instance) / "archive-catalog.sqlite3",
                      asterisk.recordings)
    bench.start_uploader(env)
    print(f"callrec upload is running (log: {bench.log_dir / 'callrec-upload.log'})")
    password = secrets.token_urlsafe(12)
    bench.start_archive_web({
        **env, "CALLREC_WEB__PORT": str(WEB_PORT),
        "CALLREC_WEB__COOKIE_SECURE": "false",  # loopback only; behind TLS in production
        # The uploader tells the catalog of each call at once; the sync brings changes made
        # elsewhere (another archive server's outcome changes and holds).
        "CALLREC_WEB__SYNC_INTERVAL_S": "60",
        "CALLREC_WEB__USERS": json.dumps({"demo": {"role": "admin",
                                                  "password_hash": hash_password(password)}})})
    return password


def place_call(bench: Bench, number: str = "0312345678", did: str = "9101") -> int:
    """One real call into the running sandbox, followed until it is archived."""
    assert bench.asterisk is not None
    spool = bench.asterisk.recordings
    before = set(spool.glob("*.json")) | set((spool / "done").glob("*.json"))
    print(f"placing a call: caller {number} -> DID {did} -> notice (ja) -> queue support -> "
          "agent Sato Hanako (agent-answer), 9 s")
    run = bench.caller().call(did, hold_s=9.0, caller_user=number, caller_name="Demo Caller")
    status = run.calls[0].final_status if run.calls else None
    print(f"SIP: INVITE answered with {status}")
    archived = _wait_archived(spool, before, timeout=30)
    if archived is None:
        print(f"error: the call did not reach the archive; see {bench.log_dir}", file=sys.stderr)
        return 1
    manifest = json.loads(archived.read_text())
    print(f"\nmanifest: {archived}\n{archived.read_text()}")
    _show_objects(bench, manifest["call_id"])
    queues = ", ".join(f"{v['queue']} ({v['result']}, waited {v['wait_s']} s)"
                       for v in manifest.get("queues", []))
    agents = ", ".join(str(a.get("agent_id") or a["endpoint"]) for a in manifest["agents"])
    print(f"\ncall {manifest['call_id']}: {manifest['status']}, outcome {manifest['outcome']}"
          f", queue {queues or 'none'}, agents {agents or 'none'}"
          f" - in the web UI: http://127.0.0.1:{WEB_PORT}/calls/{manifest['call_id']}")
    return _verify(bench)


def _verify(bench: Bench) -> int:
    """``callrec archive verify`` of the demo's bucket: signatures, chain, checkpoints."""
    ep, asterisk = bench.endpoints, bench.asterisk
    assert ep is not None and asterisk is not None
    env = service_env(ep, state_dir(ep.instance) / "archive-catalog.sqlite3",
                      asterisk.recordings)
    result = subprocess.run([sys.executable, "-m", "callrec_cli", "archive", "verify"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    print(f"\ncallrec archive verify (exit {result.returncode}):\n{result.stdout.strip()}")
    if result.returncode:
        print(result.stderr.strip()[-2000:], file=sys.stderr)
    return result.returncode


def _show_objects(bench: Bench, call_id: str) -> None:
    """The call's objects in S3, with their Object Lock, tags and metadata."""
    from testbench.s3 import s3_client

    ep = bench.endpoints
    assert ep is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    try:
        for obj in client.list_objects_v2(Bucket="callrec", Prefix="recordings/").get(
                "Contents", []):
            key = obj["Key"]
            if call_id not in key:
                continue
            head = client.head_object(Bucket="callrec", Key=key)
            tags = client.get_object_tagging(Bucket="callrec", Key=key)["TagSet"]
            print(f"  s3://callrec/{key}  {obj['Size']} bytes, lock "
                  f"{head.get('ObjectLockMode')} until {head.get('ObjectLockRetainUntilDate')}")
            print(f"    tags {dict((t['Key'], t['Value']) for t in tags)}")
            print(f"    metadata {head['Metadata']}")
    finally:
        client.close()


def _wait_archived(spool: Path, before: set[Path], timeout: float) -> Path | None:
    """The new manifest once the uploader has shipped it (moved to done/)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = sorted(set((spool / "done").glob("*.json")) - before)
        if new:
            return new[0]
        time.sleep(0.2)
    return None


def demo(bench: Bench) -> int:
    password = start_pipeline(bench)
    print(f"archive web UI: http://127.0.0.1:{WEB_PORT}/  (log in as demo / {password}; this "
          "password is made for this run only)\n")
    code = place_call(bench)
    ep = bench.endpoints
    assert ep is not None
    print(f"""
everything keeps running. Place your own call:
  make demo-call                        (SIPp as the caller, into DID 9101: queue support)
  or a softphone as the trunk: bind it to 127.0.0.2 (the trunk is matched by address), no
  registration, and dial sip:9101@127.0.0.1:{ep.sip_port} (9101: Stasis door into the queue
  support, 8101: the same by FastAGI; 9001/8001: a plain Dial to the agent)
it appears in the web UI within seconds of its hang-up.
stop everything: make sandbox-down""")
    return code
