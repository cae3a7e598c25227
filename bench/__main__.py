"""``python -m bench`` (``make bench``): every benchmark, through the real bench.

Path A is the pure-dialplan baseline (Answer -> MixMonitor -> Playback -> Dial), path B callrec;
both are measured in the same run, on the same Asterisk and the same SIPp load, and printed as
ratios to A - never as absolute thresholds: call setup at one load (bench/calls.py), the capacity
sweep and the busy box (bench/capacity.py), then the uploader, archive and evidence benchmarks.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bench import archive, calls, capacity, evidence, formats, pause, upload
from testbench import BenchError
from testbench.bench import Bench


def calls_tables(bench: Bench, args: argparse.Namespace) -> list[str]:
    app = bench.start_callrec()
    assert app.child is not None
    pid = app.child.pid
    try:
        tables = calls.measure_load(bench, pid, args.rate, args.calls, args.rounds, args.hold)
        if args.sweep:
            rates = [float(r) for r in args.sweep.split(",")]
            tables += [""] + capacity.sweep(bench, pid, rates, args.step_s, args.hold)
        if args.busy_calls:
            tables += [""] + capacity.busy_box(bench, pid, args.rate, args.busy_calls, 2,
                                               args.hold)
    finally:
        app.stop()  # one callrec per spool: the pause benchmark starts its own
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--sweep", default="5,8,10,12,14,16,18,20,25,30,40,50",
                        help="the capacity sweep's call rates, rising ('': skip)")
    parser.add_argument("--step-s", type=float, default=10.0,
                        help="seconds of arrivals per rate of the sweep")
    parser.add_argument("--busy-calls", type=int, default=200,
                        help="calls per path per round beside the CPU hogs (0: skip)")
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
    parser.add_argument("--format-hours", type=float, default=1.0,
                        help="hours of audio the archive-format benchmark transcodes")
    parser.add_argument("--format-calls", type=int, default=40,
                        help="calls the uploader archives as wav, then as opus")
    parser.add_argument("--format-minutes", type=float, default=5.0,
                        help="each such call's length")
    parser.add_argument("--pause-calls", type=int, default=10,
                        help="calls per path of the payment-pause benchmark (0: skip)")
    parser.add_argument("--only", choices=("calls", "upload", "archive", "evidence", "formats",
                                           "pause"),
                        default=None,
                        help="run one half of the benchmark")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    bench = Bench("test")
    tables: list[str] = []
    try:
        bench.up()
        if args.only in (None, "calls"):
            tables += calls_tables(bench, args)
        uploads = upload.run(bench, args.uploads, args.large_mb, args.backlog) \
            if args.only in (None, "upload") else ""
        archived = archive.run(bench, args.catalog_calls, args.sync) \
            if args.only in (None, "archive") else ""
        sealed = evidence.run(bench, args.verify) if args.only in (None, "evidence") else ""
        coded = formats.run(args.format_hours) + "\n\n" + formats.throughput(
            bench, args.format_calls, args.format_minutes) \
            if args.only in (None, "formats") else ""
        paused = pause.run(bench, args.pause_calls) \
            if args.only in (None, "pause") and args.pause_calls else ""
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bench.down()
    if tables:
        print("call setup. A = pure dialplan (Answer, MixMonitor, Playback of the same prompt, "
              "Dial); B = callrec (answer, MixMonitor over AMI, verify, notice, continue). First "
              "RTP = the notice's first packet; A's Answer() waits up to 500 ms for the caller's "
              "first voice frame (ast_answer, main/channel.c), ARI's answer does not. CPU: "
              "utime + stime from /proc, per call placed.")
        print("\n".join(tables))
        print()
    for part in (uploads, archived, sealed, coded, paused):
        if part:
            print(part)
    return 1 if any("NOT ALL" in line for line in tables) else 0


if __name__ == "__main__":
    sys.exit(main())
