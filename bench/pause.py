"""Payment pauses on the bench: how soon the card details stop reaching the file, and how soon a
resume is proven.

Each call (the bench caller's 440 Hz tone, an echoing agent) is paused and resumed once, either
by callrec's control API (path B) or, as the baseline measured in the same run on the same PBX, by
the bench sending Asterisk's own ``MixMonitorMute`` by ID over AMI (path A: what the mute costs
Asterisk itself). Latencies:

- pause -> silence: from the request to the first zero sample of the span in the file, on the
  recording's own clock (its ``started_at`` plus the sample's offset), so the file's write
  buffering does not count;
- resume -> proven: from the request to the answer. B's answer comes once callrec has unmuted,
  proven the rule again and seen the file grow (ari_app/pause.py); A's once Asterisk answers the
  unmute (no proof at all). The ratio is what the proof costs.

    python -m bench.pause --calls 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from callrec.manifest import CallManifest
from testbench import BenchError
from testbench.asterisk import ami_action
from testbench.audio import silent_spans, wait_complete
from testbench.bench import Bench
from testbench.endpoints import Endpoints, wait_for_channel
from testbench.procs import free_port

TOKEN = "bench-pause-api-token"
PAUSE_S, HOLD_S = 3.0, 14.0


def _api(port: int, call_id: str, action: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/calls/{call_id}/{action}", data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=15) as reply:
        state = json.loads(reply.read())["state"]
    if state not in ("paused", "resumed"):
        raise BenchError(f"{action} of {call_id}: {state}")


def _endpoints(bench: Bench) -> Endpoints:
    if bench.endpoints is None:
        raise BenchError("the bench is not up")
    return bench.endpoints


def _ami_mute(bench: Bench, trunk: str, on: bool) -> None:
    ep = _endpoints(bench)
    mixmon = ami_action(bench.ports.ami, ep.asterisk, {"Action": "Getvar", "Channel": trunk,
                                                       "Variable": "CALLREC_MIXMON_ID"})
    reply = ami_action(bench.ports.ami, ep.asterisk, {
        "Action": "MixMonitorMute", "Channel": trunk, "MixMonitorID": mixmon["Value"],
        "Direction": "both", "State": "1" if on else "0"})
    if reply.get("Response") != "Success":
        raise BenchError(f"MixMonitorMute: {reply}")


def one_call(bench: Bench, number: str, act: Callable[[str, str, bool], None],
             ) -> tuple[float, float]:
    """(pause -> silence, resume -> answer) in seconds, for one call."""
    ep = _endpoints(bench)
    with ThreadPoolExecutor(1) as pool:
        placed = pool.submit(bench.caller().call, "9001", hold_s=HOLD_S, caller_user=number)
        wait_for_channel(ep, "PJSIP/agent-answer-")
        trunk = wait_for_channel(ep, "PJSIP/trunk-")
        call_id = ami_action(bench.ports.ami, ep.asterisk, {
            "Action": "Getvar", "Channel": trunk, "Variable": "CALLREC_ID"})["Value"]
        time.sleep(1.0)
        asked = datetime.now(UTC)
        act(trunk, call_id, True)
        time.sleep(PAUSE_S)
        started = time.monotonic()
        act(trunk, call_id, False)
        resumed = time.monotonic() - started
        placed.result()
    m = _manifest(bench, number)
    assert m.recording is not None and m.recording.started_at is not None
    wav = Path(m.recording.path)
    wait_complete(wav)
    spans = silent_spans(wav, min_s=1.0)
    if len(spans) != 1:
        raise BenchError(f"{m.call_id}: {len(spans)} silent spans, expected the pause's")
    silent_at = m.recording.started_at.timestamp() + spans[0][0]
    return silent_at - asked.timestamp(), resumed


def _manifest(bench: Bench, number: str, timeout: float = 30.0) -> CallManifest:
    assert bench.asterisk is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in bench.asterisk.recordings.glob("*.json"):
            m = CallManifest.read(path)
            if m.caller.number_raw == number:
                return m
        time.sleep(0.2)
    raise BenchError(f"no manifest for {number}")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(bench: Bench, calls: int) -> str:
    port = free_port()
    app = bench.start_callrec(CALLREC_API__PORT=str(port), CALLREC_API__TOKEN=TOKEN)
    try:
        return _measure(bench, port, calls)
    finally:
        app.stop()


def _measure(bench: Bench, port: int, calls: int) -> str:
    paths: dict[str, Callable[[str, str, bool], None]] = {
        "A AMI mute": lambda trunk, call_id, on: _ami_mute(bench, trunk, on),
        "B callrec API": lambda trunk, call_id, on: _api(port, call_id,
                                                         "pause" if on else "resume"),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for n in range(calls):  # alternating, so both paths see the same box
        for i, (name, act) in enumerate(paths.items()):
            results[name].append(one_call(bench, f"0355{i}{n:03d}{time.time_ns() % 10**6:06d}",
                                          act))
    lines = [f"payment pauses, {calls} calls per path (pause -> first silent sample in the file; "
             "resume -> answered: B proven, A unproven)",
             f"{'path':<16}{'pause p50':>11}{'p99':>9}{'resume p50':>12}{'p99':>9}"]
    base = results["A AMI mute"]
    for name, rows in results.items():
        pause, resume = [r[0] for r in rows], [r[1] for r in rows]
        lines.append(f"{name:<16}{_pct(pause, .5) * 1000:>9.0f}ms{_pct(pause, .99) * 1000:>7.0f}ms"
                     f"{_pct(resume, .5) * 1000:>10.0f}ms{_pct(resume, .99) * 1000:>7.0f}ms")
    b = results["B callrec API"]
    lines.append(
        f"B/A ratios: pause p50 {_ratio(b, base, 0)}, resume p50 {_ratio(b, base, 1)}")
    return "\n".join(lines)


def _ratio(b: list[tuple[float, float]], a: list[tuple[float, float]], i: int) -> str:
    top = statistics.median(r[i] for r in b)
    bottom = statistics.median(r[i] for r in a)
    return f"{top / bottom:.2f}x" if bottom > 0 else "n/a (A below the clock's resolution)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pause", description=__doc__)
    parser.add_argument("--calls", type=int, default=10, help="calls per path")
    args = parser.parse_args(argv)
    bench = Bench("test")
    try:
        bench.up()
        print(run(bench, args.calls))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        bench.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
