"""Call setup through the real bench: path A (pure dialplan) and path B (callrec) under the same
SIPp load, alternating, with the CPU each costs per call.

Path A is the pure-dialplan baseline (Answer -> MixMonitor -> Playback -> Dial); path B enters
callrec's Stasis door (answer, MixMonitor over AMI, verify, notice, continue). Both play the same
prompt in the same language and reach the same agent, so they do the same media work.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import percentile, rtp
from testbench.bench import Bench
from testbench.sipp import TRUNK_IP

PATH_A, PATH_B = "baseline-notice", "9001"  # testbench/conf/extensions.conf


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (clock ticks -> seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class PathResult:
    name: str
    calls: int = 0
    answered: int = 0
    failed: int = 0  # not answered, or SIPp saw the call fail later (exit code 1)
    answer_ms: list[float] = field(default_factory=list)
    sound_ms: list[float] = field(default_factory=list)  # INVITE -> the notice's first RTP
    asterisk_cpu_s: float = 0.0
    callrec_cpu_s: float = 0.0

    def add(self, other: PathResult) -> None:
        self.calls += other.calls
        self.answered += other.answered
        self.failed += other.failed
        self.answer_ms += other.answer_ms
        self.sound_ms += other.sound_ms
        self.asterisk_cpu_s += other.asterisk_cpu_s
        self.callrec_cpu_s += other.callrec_cpu_s

    def p99(self) -> float:
        return percentile(self.answer_ms, 99)

    def per_call_ms(self, seconds: float) -> float:
        return 1000 * seconds / self.calls if self.calls else float("nan")

    def row(self) -> str:
        a, s = self.answer_ms, self.sound_ms
        return (f"{self.name:<10} {self.answered:>4}/{self.calls:<4} "
                f"{percentile(a, 50):>8.1f} {percentile(a, 90):>8.1f} {percentile(a, 99):>8.1f} "
                f"{percentile(s, 50):>8.1f} {percentile(s, 90):>8.1f} {percentile(s, 99):>8.1f} "
                f"{self.per_call_ms(self.asterisk_cpu_s):>9.1f}")


def run_path(bench: Bench, service: str, calls: int, rate: float, hold_s: float,
             app_pid: int | None = None) -> PathResult:
    """One batch of ``calls`` at ``rate`` into ``service``: timings and the CPU Asterisk (and
    callrec, given its PID) spent meanwhile."""
    assert bench.asterisk is not None and bench.asterisk.child is not None
    pid = bench.asterisk.child.pid
    caller = bench.caller()
    before, app_before = cpu_seconds(pid), cpu_seconds(app_pid) if app_pid else 0.0
    with rtp.capture(caller.pbx_port, TRUNK_IP, caller.media_port) as pcap:
        run = caller.call(service, count=calls, rate=rate, hold_s=hold_s,
                          timeout_s=calls / rate + hold_s + 60)
        cpu = cpu_seconds(pid) - before
        app_cpu = cpu_seconds(app_pid) - app_before if app_pid else 0.0
    sound = rtp.first_sound_ms(pcap, caller.pbx_port, TRUNK_IP, caller.media_port)
    shutil.rmtree(pcap.parent, ignore_errors=True)
    answer = [c.answer_ms for c in run.calls if c.answer_ms is not None]
    failed = calls - len(answer) or (1 if run.returncode else 0)
    return PathResult(service, calls, len(answer), failed, answer, sound, cpu, app_cpu)


def cpu_line(a: PathResult, b: PathResult) -> str:
    share = b.callrec_cpu_s / b.asterisk_cpu_s if b.asterisk_cpu_s else float("nan")
    return (f"CPU per call: Asterisk {a.per_call_ms(a.asterisk_cpu_s):.1f} ms (A), "
            f"{b.per_call_ms(b.asterisk_cpu_s):.1f} ms (B); callrec "
            f"{b.per_call_ms(b.callrec_cpu_s):.2f} ms = {share:.1%} of Asterisk's during B "
            "(goal <= 8 %)")


def ratio_row(a: PathResult, b: PathResult) -> str:
    d99 = b.p99() - a.p99()
    s99 = percentile(b.sound_ms, 99) - percentile(a.sound_ms, 99)
    sr99 = percentile(b.sound_ms, 99) / percentile(a.sound_ms, 99)
    return (f"B - A at p99: 200 OK {d99:+.1f} ms (B/A {b.p99() / a.p99():.2f}x), first sound "
            f"{s99:+.1f} ms (B/A {sr99:.2f}x)")


def alternate(bench: Bench, app_pid: int, rate: float, calls: int, rounds: int, hold: float,
              ) -> tuple[PathResult, PathResult]:
    """A and B alternate ``rounds`` times at one load."""
    a, b = PathResult("baseline"), PathResult("callrec")
    for _ in range(rounds):
        a.add(run_path(bench, PATH_A, calls, rate, hold))
        time.sleep(2)  # let the PBX settle between batches
        b.add(run_path(bench, PATH_B, calls, rate, hold, app_pid))
        time.sleep(2)
    return a, b


def load_table(a: PathResult, b: PathResult, title: str) -> list[str]:
    return [title,
            f"{'':<20} {'INVITE -> 200 OK':^26} {'INVITE -> first RTP':^26} {'Asterisk':>9}",
            f"{'path':<10} {'answered':>9} {'p50':>8} {'p90':>8} {'p99':>8} {'p50':>8} "
            f"{'p90':>8} {'p99':>8} {'ms/call':>9}",
            a.row(), b.row(), ratio_row(a, b), cpu_line(a, b),
            "" if not a.failed and not b.failed else "NOT ALL CALLS ANSWERED"]


def measure_load(bench: Bench, app_pid: int, rate: float, calls: int, rounds: int,
                 hold: float) -> list[str]:
    a, b = alternate(bench, app_pid, rate, calls, rounds, hold)
    return load_table(a, b, f"{rounds} rounds x {calls} calls per path at {rate:g} calls/s, "
                            f"{hold:g} s each (ms)")
