"""What callrec costs the PBX's headroom: the highest call rate each path sustains, and the
caller's wait when the box is busy with something else.

(a) Capacity sweep: paths A (pure dialplan) and B (callrec) alternate at each rate of a rising
    ladder; a path sustains a rate when every call of the step was answered and p99 INVITE ->
    200 OK stayed within the limit. Each path's ladder ends at its first rate that fails; the
    printed capacity is the highest rate below it, for A and B, and their ratio.
(b) Busy box: the usual A/B comparison while one CPU hog per core (``while True: pass`` at
    normal priority, our own children, stopped by PID) competes with Asterisk and callrec, as
    transcoding, other apps or a backup do on a real PBX.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.calls import PATH_A, PATH_B, PathResult, alternate, load_table, run_path
from testbench.bench import Bench

HOG = "while True: pass"


def _sustained(result: PathResult, limit_ms: float) -> bool:
    return result.failed == 0 and result.p99() <= limit_ms


def _cell(result: PathResult | None, limit_ms: float) -> str:
    if result is None:
        return f"{'-':>27}"
    verdict = "ok" if _sustained(result, limit_ms) else "FAIL"
    return (f"{result.p99():>8.1f} {result.failed:>4} "
            f"{result.per_call_ms(result.asterisk_cpu_s):>7.1f} {verdict:>5}")


def sweep(bench: Bench, app_pid: int, rates: list[float], step_s: float, hold: float,
          limit_ms: float = 100.0) -> list[str]:
    """The ladder, A then B at each rate, until both have failed once."""
    best = {PATH_A: 0.0, PATH_B: 0.0}
    done: set[str] = set()
    totals = {PATH_A: PathResult("baseline"), PATH_B: PathResult("callrec")}
    lines = [f"capacity sweep: calls of {hold:g} s arriving for {step_s:g} s per step; a rate "
             f"is sustained with every call answered and p99 INVITE -> 200 OK <= "
             f"{limit_ms:g} ms",
             f"{'':>6} {'A (pure dialplan)':^27} {'B (callrec)':^27}",
             f"{'rate':>6} {'p99 ms':>8} {'fail':>4} {'ast ms':>7} {'':>5} {'p99 ms':>8} "
             f"{'fail':>4} {'ast ms':>7} {'':>5} {'callrec ms':>10}"]
    for rate in rates:
        if len(done) == 2:
            break
        calls = max(10, round(rate * step_s))
        step: dict[str, PathResult | None] = {}
        for service in (PATH_A, PATH_B):
            if service in done:
                step[service] = None
                continue
            result = run_path(bench, service, calls, rate, hold,
                              app_pid if service == PATH_B else None)
            step[service] = result
            totals[service].add(result)
            if _sustained(result, limit_ms):
                best[service] = rate
            else:
                done.add(service)
            time.sleep(3)  # the last calls' teardown and the spool's writes settle
        b = step[PATH_B]
        callrec = f"{b.per_call_ms(b.callrec_cpu_s):>10.2f}" if b else f"{'-':>10}"
        lines.append(f"{rate:>6g} {_cell(step[PATH_A], limit_ms)} {_cell(b, limit_ms)} "
                     f"{callrec}")
    rate_a, rate_b = best[PATH_A], best[PATH_B]
    ratio = f"{rate_b / rate_a:.2f}x" if rate_a else "n/a (A sustained no rate)"
    lines.append(f"sustained: A {rate_a:g} calls/s, B {rate_b:g} calls/s; B/A {ratio} "
                 "(goal >= 0.9x)")
    ta, tb = totals[PATH_A], totals[PATH_B]
    lines.append(f"CPU per call over the sweep: Asterisk {ta.per_call_ms(ta.asterisk_cpu_s):.1f}"
                 f" ms (A), {tb.per_call_ms(tb.asterisk_cpu_s):.1f} ms (B); callrec "
                 f"{tb.per_call_ms(tb.callrec_cpu_s):.2f} ms")
    return lines


@contextmanager
def hogs(count: int) -> Iterator[list[int]]:
    """``count`` busy loops at normal priority; killed by their PIDs afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]
    try:
        time.sleep(1)  # let the scheduler spread them
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def busy_box(bench: Bench, app_pid: int, rate: float, calls: int, rounds: int,
             hold: float) -> list[str]:
    cores = os.cpu_count() or 1
    with hogs(cores):
        a, b = alternate(bench, app_pid, rate, calls, rounds, hold)
    lines = load_table(a, b, f"busy box: {cores} CPU hog(s) beside the PBX; {rounds} rounds x "
                             f"{calls} calls per path at {rate:g} calls/s, {hold:g} s each (ms)")
    lines.insert(-1, f"busy box B/A p99 INVITE -> 200 OK: {b.p99() / a.p99():.2f}x "
                     "(goal <= 1.5x)")
    return lines
