"""``python -m bench`` (``make bench``): call-setup timings through the real bench.

Path A is the pure-dialplan baseline (Answer -> MixMonitor -> Playback -> Dial). Later paths
(callrec) are measured in the same run, on the same Asterisk and the same SIPp load, and printed as
ratios to A - never as absolute thresholds.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import archive, evidence, percentile, rtp, upload
from testbench import BenchError
from testbench.bench import Bench
from testbench.sipp import TRUNK_IP


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (clock ticks -> seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class PathResult:
    name: str
    calls: int
    answered: int
    answer_ms: list[float]
    sound_ms: list[float]  # INVITE -> first RTP packet to the caller (the notice)
    asterisk_cpu_s: float

    def add(self, other: PathResult) -> None:
        self.calls += other.calls
        self.answered += other.answered
        self.answer_ms += other.answer_ms
        self.sound_ms += other.sound_ms
        self.asterisk_cpu_s += other.asterisk_cpu_s

    def row(self) -> str:
        a, s = self.answer_ms, self.sound_ms
        return (f"{self.name:<10} {self.answered:>4}/{self.calls:<4} "
                f"{percentile(a, 50):>8.1f} {percentile(a, 90):>8.1f} {percentile(a, 99):>8.1f} "
                f"{percentile(s, 50):>8.1f} {percentile(s, 90):>8.1f} {percentile(s, 99):>8.1f} "
                f"{self.asterisk_cpu_s:>9.2f}")


def run_path(bench: Bench, service: str, calls: int, rate: float, hold_s: float) -> PathResult:
    assert bench.asterisk is not None and bench.asterisk.child is not None
    pid = bench.asterisk.child.pid
    caller = bench.caller()
    before = cpu_seconds(pid)
    with rtp.capture(caller.pbx_port, TRUNK_IP, caller.media_port) as pcap:
        run = caller.call(service, count=calls, rate=rate, hold_s=hold_s,
                          timeout_s=calls / rate + hold_s + 60)
        cpu = cpu_seconds(pid) - before
    sound = rtp.first_sound_ms(pcap, caller.pbx_port, TRUNK_IP, caller.media_port)
    shutil.rmtree(pcap.parent, ignore_errors=True)
    answer = [c.answer_ms for c in run.calls if c.answer_ms is not None]
    return PathResult(service, calls, len(answer), answer, sound, cpu)


def ratio_row(a: PathResult, b: PathResult, callrec_cpu_s: float) -> str:
    d99 = percentile(b.answer_ms, 99) - percentile(a.answer_ms, 99)
    r99 = percentile(b.answer_ms, 99) / percentile(a.answer_ms, 99)
    s99 = percentile(b.sound_ms, 99) - percentile(a.sound_ms, 99)
    sr99 = percentile(b.sound_ms, 99) / percentile(a.sound_ms, 99)
    share = callrec_cpu_s / b.asterisk_cpu_s if b.asterisk_cpu_s else float("nan")
    per_call = 1000 * callrec_cpu_s / b.calls if b.calls else float("nan")
    asterisk_per_call = 1000 * b.asterisk_cpu_s / b.calls if b.calls else float("nan")
    return (f"B - A at p99: 200 OK {d99:+.1f} ms (B/A {r99:.2f}x), first sound {s99:+.1f} ms "
            f"(B/A {sr99:.2f}x); callrec CPU {callrec_cpu_s:.2f} s = {share:.1%} of Asterisk's "
            f"during B; CPU per call: callrec {per_call:.2f} ms, Asterisk {asterisk_per_call:.1f} "
            "ms")


def measure_load(bench: Bench, app_pid: int, rate: float, calls: int, rounds: int,
                 hold: float) -> list[str]:
    """A and B alternate ``rounds`` times at one load; the table's lines."""
    a = PathResult("baseline", 0, 0, [], [], 0.0)
    b = PathResult("callrec", 0, 0, [], [], 0.0)
    callrec_cpu = 0.0
    for _ in range(rounds):
        a.add(run_path(bench, "baseline-notice", calls, rate, hold))
        time.sleep(2)  # let the PBX settle between batches
        before = cpu_seconds(app_pid)
        b.add(run_path(bench, "9001", calls, rate, hold))
        callrec_cpu += cpu_seconds(app_pid) - before
        time.sleep(2)
    return [f"{rounds} rounds x {calls} calls per path at {rate:g} calls/s, {hold:g} s each (ms)",
            f"{'':<20} {'INVITE -> 200 OK':^26} {'INVITE -> first RTP':^26}",
            f"{'path':<10} {'answered':>9} {'p50':>8} {'p90':>8} {'p99':>8} {'p50':>8} "
            f"{'p90':>8} {'p99':>8} {'ast CPU s':>9}",
            a.row(), b.row(), ratio_row(a, b, callrec_cpu),
            "" if a.answered == a.calls and b.answered == b.calls else "NOT ALL CALLS ANSWERED"]


def calls_table(bench: Bench, args: argparse.Namespace) -> list[str]:
    app = bench.start_callrec()
    assert app.child is not None
    tables = measure_load(bench, app.child.pid, args.rate, args.calls, args.rounds, args.hold)
    if args.saturation_rate:
        tables += ["", "saturation:"] + measure_load(
            bench, app.child.pid, args.saturation_rate, args.calls * 2, 2, args.hold)
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--saturation-rate", type=float, default=40.0,
                        help="the rate that saturates a 2-core box (0: skip)")
    parser.add_argument("--calls", type=int, default=200, help="calls per path per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="A and B alternate this many times: two cores are shared by "
                             "Asterisk, SIPp and callrec, so one batch each is too noisy")
    parser.add_argument("--hold", type=float, default=9.0,
                        help="seconds each call lasts (4.7 s notice, then an agent)")
    parser.add_argument("--uploads", type=int, default=500, help="1 MiB recordings to upload")
    parser.add_argument("--large-mb", type=int, default=500, help="one large recording (0: skip)")
    parser.add_argument("--backlog", type=int, default=10000,
                        help="calls in the backlog for the RSS benchmark (0: skip)")
    parser.add_argument("--catalog-calls", type=int, default=1_000_000,
                        help="synthetic calls in the archive catalog")
    parser.add_argument("--sync", type=int, default=10_000,
                        help="new manifests the catalog syncs from S3 (0: skip)")
    parser.add_argument("--verify", type=int, default=100_000,
                        help="sealed calls archive verify walks (0: only the sealing costs)")
    parser.add_argument("--only", choices=("calls", "upload", "archive", "evidence"),
                        default=None,
                        help="run one half of the benchmark")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    bench = Bench("test")
    tables: list[str] = []
    try:
        bench.up()
        if args.only in (None, "calls"):
            tables += calls_table(bench, args)
        uploads = upload.run(bench, args.uploads, args.large_mb, args.backlog) \
            if args.only in (None, "upload") else ""
        archived = archive.run(bench, args.catalog_calls, args.sync) \
            if args.only in (None, "archive") else ""
        sealed = evidence.run(bench, args.verify) if args.only in (None, "evidence") else ""
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bench.down()
    if tables:
        print("call setup. A = pure dialplan (Answer, MixMonitor, Playback of the same prompt, "
              "Dial); B = callrec (answer, MixMonitor over AMI, verify, notice, continue). First "
              "RTP = the notice's first packet; A's Answer() waits up to 500 ms for the caller's "
              "first voice frame (ast_answer, main/channel.c), ARI's answer does not.")
        print("\n".join(tables))
        print()
    print(uploads)
    print(archived)
    print(sealed)
    return 1 if any("NOT ALL" in line for line in tables) else 0


if __name__ == "__main__":
    sys.exit(main())
