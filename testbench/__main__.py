"""``python -m testbench up|down|status|build|clean [--instance NAME]``: the sandbox by hand."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import shutil
import sys

from testbench import BenchError
from testbench.asterisk import PRESETS
from testbench.bench import Bench, state_dir
from testbench.chroot import cache_dir, ensure_chroot
from testbench.demo import DEMO_AGENTS, demo, place_call
from testbench.endpoints import Endpoints


def _describe(ep: Endpoints, bench: Bench) -> str:
    state = state_dir(ep.instance)
    lines = [
        f"callrec sandbox '{ep.instance}' is up (processes stop with: make sandbox-down)",
        f"  ARI       {ep.ari_url}/ari  (user {ep.asterisk.ari_user})",
        f"  AMI       {ep.ami_host}:{ep.ami_port}  (user {ep.asterisk.ami_user})",
        f"  SIP       udp 127.0.0.1:{ep.sip_port}  (trunk from 127.0.0.2; agent phones "
        + ", ".join(["agent-" + kind.replace("_", "-") for kind in bench.agent_kinds]
                    + (["agent-answer (baresip)"] if bench.quiet_agent else [])) + ")",
        f"  S3        {ep.s3_endpoint}  (access key {ep.s3.access_key})",
        f"  spool     {ep.spool}",
        f"  secrets   {state / 'bench.json'} (mode 0600; generated for this run)",
        f"  logs      {state / 'log'}",
    ]
    if bench.timings:
        lines.append("  timings   " + ", ".join(f"{k} {v:.1f} s" for k, v in bench.timings.items()))
    return "\n".join(lines)


def call_into(bench: Bench) -> int:
    """A call into an instance that is already up (``make demo-call``)."""
    path = state_dir(bench.instance) / "bench.json"
    if not path.exists():
        raise BenchError(f"sandbox '{bench.instance}' is not running: make demo first")
    bench.attach(Endpoints.load(path))
    return place_call(bench, number="03" + str(secrets.randbelow(10**8)).zfill(8))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbench", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "build", "clean", "demo",
                                            "call"])
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
            print(_describe(bench.up(agents=DEMO_AGENTS, quiet_agent=True), bench))
            return demo(bench)
        elif args.command == "call":
            return call_into(bench)
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
