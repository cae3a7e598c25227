"""``make chaos`` (``python -m bench.chaos --minutes N``): a bounded soak of the real bench under
faults, then an audit from Asterisk's own records (bench/chaos_audit.py).

Calls never stop coming in three lanes (the trunk, a second trunk caller, an agent calling
out): Stasis and FastAGI doors, the only agent busy, a queue with a busy agent, a transfer, an
outbound call; short and long. Meanwhile, at fixed points of the run: ``callrec ari`` killed
with -9 (once, twice within one long call's life, and once long enough for short calls to
begin and end while it is down), ``callrec upload`` killed, AMI and the ARI websocket cut, S3
gone, Asterisk crashed and restarted, the spool full (a tmpfs the soak mounts over it). Then
the uploader drains, ``callrec reconcile`` runs as an operator would, and the audit judges.

Not part of ``make test``: it takes its minutes, and it owns the "test" bench instance (do not
run it beside ``make test``). Exit status 1 on any loss or violation.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.chaos_audit import Placed, audit, table
from testbench import BenchError
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp
from testbench.procs import Child
from testbench.proxy import CuttingProxy
from testbench.s3 import create_locked_bucket, s3_client
from testbench.sipp import Caller

log = logging.getLogger("bench.chaos")
SPOOL_MB, MIN_FREE_MB, LEFT_FREE_MB = 768, 64, 24  # the tmpfs; callrec's floor; a full spool


@dataclass(frozen=True)
class Route:
    name: str
    service: str
    holds: tuple[float, ...]  # seconds of each batch's calls, in turn: short and long


LANES: dict[str, tuple[Route, ...]] = {
    "trunk": (Route("stasis", "9001", (4, 40)), Route("agi", "8001", (6, 25)),
              Route("busy agent", "9002", (3,)), Route("queue, busy agent", "9111", (8, 30))),
    "second": (Route("transfer", "9008", (12,)), Route("stasis", "9001", (3, 50))),
    "agent": (Route("outbound", "2003", (10, 30)),),
}


@dataclass
class Soak:
    bench: Bench
    work: Path
    deadline: float = 0.0
    placed: list[Placed] = field(default_factory=list)
    faults: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    app: CallrecApp | None = None
    uploader: Child | None = None
    env: dict[str, str] = field(default_factory=dict)
    ari_env: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the services --------------------------------------------------------------------------
    def start_app(self) -> None:
        self.app = self.bench.start_callrec(**self.ari_env)

    def kill_app(self) -> None:
        assert self.app is not None and self.app.child is not None
        self.app.child.proc.kill()
        self.app.child.proc.wait()

    def start_uploader(self) -> None:
        self.uploader = self.bench.start_uploader(self.env, timeout=60)

    # -- the load ------------------------------------------------------------------------------
    def lane(self, name: str, caller: Caller, user: str | None) -> None:
        turn = 0
        while time.monotonic() < self.deadline:
            route = LANES[name][turn % len(LANES[name])]
            hold = route.holds[(turn // len(LANES[name])) % len(route.holds)]
            turn += 1
            count = 1 if name == "agent" else 3
            number = user or "0" + str(uuid.uuid4().int)[:10]
            started = datetime.now(UTC)
            run = caller.call(route.service, hold_s=hold, count=count, rate=1.0,
                              caller_user=number, timeout_s=hold + count + 90)
            statuses = [c.final_status for c in run.calls]
            with self.lock:
                self.placed.append(Placed(name, route.name, route.service, number, count,
                                          started, statuses))

    def load(self) -> list[threading.Thread]:
        b = self.bench
        lanes = [threading.Thread(target=self.lane, args=args, name=f"lane-{args[0]}")
                 for args in (("trunk", b.caller(), None), ("second", b.second_caller(), None),
                              ("agent", b.agent_caller(), "agent-answer"))]
        for t in lanes:
            t.start()
        return lanes

    # -- the faults ----------------------------------------------------------------------------
    def fault(self, name: str, action: Callable[[], None]) -> None:
        began = datetime.now(UTC)
        log.info("fault: %s", name)
        action()
        self.faults.append((name, began, datetime.now(UTC)))


def schedule(soak: Soak, ami: CuttingProxy, ari: CuttingProxy, spool: Path
             ) -> list[tuple[float, str, Callable[[], None]]]:
    """(fraction of the run, name, action): every fault once, spread over the run."""
    b = soak.bench

    def kill_ari(down_s: float) -> Callable[[], None]:
        def action() -> None:
            soak.kill_app()
            time.sleep(down_s)
            soak.start_app()
        return action

    def kill_twice() -> None:
        kill_ari(2.0)()
        time.sleep(8.0)  # the long calls (25-50 s) taken on at the first restart are still up
        kill_ari(2.0)()

    def kill_upload() -> None:
        assert soak.uploader is not None
        soak.uploader.proc.kill()
        soak.uploader.proc.wait()
        time.sleep(3.0)
        soak.start_uploader()

    def s3_outage() -> None:
        assert b.s3 is not None
        b.s3.stop()
        time.sleep(20.0)
        b.restart_s3()

    return [(0.06, "kill -9 callrec ari", kill_ari(2.0)),
            (0.14, "kill -9 callrec ari twice in one call's life", kill_twice),
            (0.24, "kill -9 callrec upload", kill_upload),
            (0.32, "AMI cut (3 s)", lambda: ami.cut(block_s=3.0)),
            (0.40, "ARI websocket cut (3 s)", lambda: ari.cut(block_s=3.0)),
            (0.50, "S3 outage (20 s)", s3_outage),
            (0.60, "spool full (20 s)", lambda: fill(spool, 20.0)),
            (0.72, "Asterisk crash and restart", lambda: b.crash_asterisk(down_s=2.0)),
            (0.84, "callrec ari down 12 s (calls begin and end meanwhile)", kill_ari(12.0))]


def fill(spool: Path, hold_s: float) -> None:
    """Leave LEFT_FREE_MB free on the spool's file system (below callrec's floor) for hold_s."""
    st = os.statvfs(spool)
    size = st.f_bavail * st.f_frsize - LEFT_FREE_MB * 2**20
    filler = spool / ".chaos-filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, max(size, 0))
    finally:
        os.close(fd)
    time.sleep(hold_s)
    filler.unlink()


def mount_spool(spool: Path) -> None:
    """A small file system of its own under the spool, so that "full" is real (ENOSPC) without
    filling the machine's disk."""
    if os.path.ismount(spool):  # an earlier soak that died before its clean-up
        subprocess.run(["umount", "-l", str(spool)], check=True)
    st = spool.stat()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPOOL_MB}m,mode={st.st_mode & 0o7777:o},"
                    f"uid={st.st_uid},gid={st.st_gid}", "callrec-chaos", str(spool)], check=True)


def drain(spool: Path, timeout: float) -> None:
    """Until the uploader has shipped every manifest (quarantined ones stay: the audit counts)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(spool.glob("[!.]*.json")):
        time.sleep(1.0)


def run(minutes: float) -> int:
    bench = Bench("test")
    bench.up()
    assert bench.asterisk is not None and bench.endpoints is not None
    spool = bench.asterisk.recordings
    mount_spool(spool)
    work = bench.state / "chaos"
    work.mkdir(exist_ok=True)
    try:
        return soak_and_audit(bench, work, spool, minutes)
    finally:
        bench.down()
        subprocess.run(["umount", "-l", str(spool)], check=False)


def soak_and_audit(bench: Bench, work: Path, spool: Path, minutes: float) -> int:
    ep = bench.endpoints
    assert ep is not None and bench.asterisk is not None
    client = s3_client(ep.s3_endpoint, ep.s3)
    bucket = f"chaos-{uuid.uuid4().hex[:10]}"
    create_locked_bucket(client, bucket)
    soak = Soak(bench, work)
    soak.env = bench.service_env(bucket, work, f"chaos-{secrets.token_hex(3)}",
                                 CALLREC_RECONCILE__SETTLE_S="0")
    with CuttingProxy(ep.ami_port) as ami, \
            CuttingProxy(int(ep.ari_url.rsplit(":", 1)[1])) as ari:
        soak.ari_env = {"CALLREC_AMI__PORT": str(ami.port),
                        "CALLREC_ARI__URL": f"http://127.0.0.1:{ari.port}",
                        "CALLREC_SPOOL__MIN_FREE_MB": str(MIN_FREE_MB),
                        **{k: soak.env[k] for k in ("CALLREC_EVIDENCE__DIR",
                                                     "CALLREC_EVIDENCE__HOST")}}
        bench.start_customer(outside=True)  # the outbound and transfer-out calls' far end
        soak.start_app()
        soak.start_uploader()
        since = datetime.now(UTC) - timedelta(seconds=2)
        began = time.monotonic()
        soak.deadline = began + minutes * 60
        lanes = soak.load()
        for at, name, action in schedule(soak, ami, ari, spool):
            time.sleep(max(0.0, began + at * minutes * 60 - time.monotonic()))
            soak.fault(name, action)
        for t in lanes:
            t.join()
        time.sleep(5.0)  # the last calls' recordings proven closed, their manifests written
        drain(spool, 180.0)
    result = audit(bench, soak.env, client, bucket, since, soak.placed, soak.faults)
    client.close()
    print("\n".join(table(result, minutes)))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long calls come in")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    if args.minutes < 1:
        parser.error("--minutes: at least 1 (every fault needs room)")
    try:
        return run(args.minutes)
    except BenchError as exc:
        print(f"chaos: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
