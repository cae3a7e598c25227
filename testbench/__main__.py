"""``python -m testbench up|down|status|build|clean [--instance NAME]``: the sandbox by hand."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import sys
import time
from pathlib import Path

from testbench import BenchError
from testbench.asterisk import PRESETS
from testbench.bench import Bench, Endpoints, state_dir
from testbench.chroot import cache_dir, ensure_chroot


def _describe(ep: Endpoints, bench: Bench) -> str:
    state = state_dir(ep.instance)
    lines = [
        f"callrec sandbox '{ep.instance}' is up (processes stop with: make sandbox-down)",
        f"  ARI       {ep.ari_url}/ari  (user {ep.asterisk.ari_user})",
        f"  AMI       {ep.ami_host}:{ep.ami_port}  (user {ep.asterisk.ami_user})",
        f"  SIP       udp 127.0.0.1:{ep.sip_port}  (trunk from 127.0.0.2; agent phones "
        f"agent-answer/agent-busy/agent-noanswer)",
        f"  S3        {ep.s3_endpoint}  (access key {ep.s3.access_key})",
        f"  spool     {ep.spool}",
        f"  secrets   {state / 'bench.json'} (mode 0600; generated for this run)",
        f"  logs      {state / 'log'}",
    ]
    if bench.timings:
        lines.append("  timings   " + ", ".join(f"{k} {v:.1f} s" for k, v in bench.timings.items()))
    return "\n".join(lines)


def demo_call(bench: Bench) -> int:
    """Start callrec, place one real call through it to an agent phone, show what it left."""
    app = bench.start_callrec()
    print(f"\ncallrec ari is running (log: {app.log_dir / 'callrec-ari.log'})")
    print("placing a call: caller 0312345678 -> DID 9001 -> notice (ja) -> agent-answer, 9 s")
    assert bench.asterisk is not None
    before = set(bench.asterisk.recordings.glob("*.json"))
    run = bench.caller().call("9001", hold_s=9.0, caller_user="0312345678",
                              caller_name="Demo Caller")
    deadline = time.monotonic() + 15
    new: list[Path] = []
    while time.monotonic() < deadline and not new:
        new = sorted(set(bench.asterisk.recordings.glob("*.json")) - before)
        time.sleep(0.2)
    if not new:
        print(f"error: no manifest appeared; see {app.log_dir}", file=sys.stderr)
        return 1
    status = run.calls[0].final_status if run.calls else None
    print(f"SIP: INVITE answered with {status}\n\nmanifest {new[0]}:\n{new[0].read_text()}")
    manifest = json.loads(new[0].read_text())
    if manifest.get("recording"):
        print(f"\nrecording: {manifest['recording']['path']}")
    return archive_demo(bench)


def archive_demo(bench: Bench) -> int:
    """Ship the call to the bench's S3 with the uploader and show the archived objects."""
    from archive.catalog import Catalog
    from callrec.s3.settings import S3Settings
    from testbench.s3 import create_locked_bucket, s3_client
    from uploader.config import UploaderSettings, UploadSettings
    from uploader.service import Uploader

    ep, asterisk = bench.endpoints, bench.asterisk
    assert ep is not None and asterisk is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    create_locked_bucket(client, "callrec")
    catalog = state_dir(ep.instance) / "archive-catalog.sqlite3"
    settings = UploaderSettings(
        s3=S3Settings(endpoint=ep.s3_endpoint, bucket="callrec", access_key=ep.s3.access_key,
                      secret_key=ep.s3.secret_key),
        upload=UploadSettings(spool=asterisk.recordings, after_upload="move", catalog=catalog))
    listed = Catalog(catalog, settings.numbering)
    uploader = Uploader(settings, feed=listed.add)
    summary = asyncio.run(uploader.drain())
    uploader.close()
    listed.close()
    print(f"\nuploader: shipped {summary.shipped}, failed {summary.failed}")
    for obj in client.list_objects_v2(Bucket="callrec").get("Contents", []):
        key = obj["Key"]
        head = client.head_object(Bucket="callrec", Key=key)
        tags = client.get_object_tagging(Bucket="callrec", Key=key)["TagSet"]
        print(f"  s3://callrec/{key}  {obj['Size']} bytes, lock "
              f"{head.get('ObjectLockMode')} until {head.get('ObjectLockRetainUntilDate')}")
        print(f"    tags {dict((t['Key'], t['Value']) for t in tags)}")
        print(f"    metadata {head['Metadata']}")
    client.close()
    print(f"\nlocal copies moved to {asterisk.recordings / 'done'}")
    web_demo(bench, catalog)
    print("\nstop everything: make sandbox-down")
    return 0 if not summary.failed else 1


def web_demo(bench: Bench, catalog: Path, port: int = 8480) -> None:
    """Start the archive web UI on the demo's archive, with a one-run demo login."""
    from archive.auth import hash_password

    ep = bench.endpoints
    assert ep is not None
    password = secrets.token_urlsafe(12)
    env = {"PATH": "/usr/bin:/bin", "CALLREC_S3__ENDPOINT": ep.s3_endpoint,
           "CALLREC_S3__BUCKET": "callrec", "CALLREC_S3__ACCESS_KEY": ep.s3.access_key,
           "CALLREC_S3__SECRET_KEY": ep.s3.secret_key,
           "CALLREC_ARCHIVE__CATALOG": str(catalog), "CALLREC_WEB__PORT": str(port),
           "CALLREC_WEB__COOKIE_SECURE": "false",  # loopback only; behind TLS in production
           "CALLREC_WEB__SYNC_INTERVAL_S": "10",
           "CALLREC_WEB__SESSION_SECRET": secrets.token_urlsafe(32),
           "CALLREC_WEB__USERS": json.dumps({"demo": {"role": "admin",
                                                     "password_hash": hash_password(password)}})}
    bench.start_archive_web(env)
    print(f"\narchive web UI: http://127.0.0.1:{port}/  (log in as demo / {password}; this "
          "password is made for this run only)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbench", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "build", "clean", "demo"])
    parser.add_argument("--instance", default="demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    bench = Bench(args.instance)
    try:
        if args.command == "build":
            print(ensure_chroot())
        elif args.command == "clean":
            for instance in PRESETS:
                Bench(instance).down()
            shutil.rmtree(cache_dir(), ignore_errors=True)
            print(f"removed {cache_dir()}")
        elif args.command == "up":
            print(_describe(bench.up(), bench))
        elif args.command == "demo":
            print(_describe(bench.up(), bench))
            return demo_call(bench)
        elif args.command == "down":
            stopped = bench.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        else:
            path = state_dir(args.instance) / "bench.json"
            if not path.exists():
                print(f"sandbox '{args.instance}' is not running")
                return 1
            print(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                              if k not in ("asterisk", "s3")}, indent=2))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
