"""The soak's judge (bench/chaos.py): Asterisk's own records against the bucket and the spool.

- **placed**: what the SIPp lanes placed; **in CDR**: the calls with a trunk party Asterisk wrote
  a CDR for (a call cut by Asterisk's crash has none: Asterisk lost it, not callrec).
- **traced**: each CDR call that owes a trace (it reached a callrec door, the CDR's userfield
  mark, or a trunk party was bridged) has a manifest or a ledger entry (matched by Asterisk's
  unique or linked id), after ``callrec reconcile`` ran as an operator would; by whom:
  callrec's manifest, callrec's ledger entry, reconcile's entry for a call that came while
  callrec was down.
- **notices without a verified recording**: every notice or warning Asterisk says it played
  (messages.log, file.c "Playing 'callrec/notice..."), matched by channel and time to a
  manifest whose recording was verified before it began; and every manifest that says a notice
  was played checked the same way.
- **duplicates**: two manifests for one Asterisk channel (unique id).
- **objects lost**: a manifest whose recording is not in the bucket at its size; a manifest
  left in the spool, or quarantined, after the drain.
- **reconcile gaps**: what ``callrec reconcile`` still reports.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from archive.evidence.reconcile import CdrRow, Reconciliation, read_cdrs
from callrec.manifest import CallManifest, RecordingStatus
from callrec.s3.layout import Layout
from callrec.s3.settings import S3Settings
from testbench.bench import Bench

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PLAYING = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\].*<([^>]+)> Playing "
                     r"'(callrec/(?:notice|warning))\.")
LAYOUT = Layout(S3Settings().key_template)  # the soak ships with the default layout
SLACK = timedelta(seconds=2)  # log and manifest clocks: the same host, millisecond stamps


@dataclass
class Placed:
    lane: str
    route: str
    service: str
    number: str
    count: int
    started: datetime
    statuses: list[int | None]


@dataclass
class Result:
    placed: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    in_cdr: Counter[str] = field(default_factory=Counter)
    traced: Counter[str] = field(default_factory=Counter)
    by_trace: Counter[str] = field(default_factory=Counter)
    untraced: list[str] = field(default_factory=list)
    not_owed: Counter[str] = field(default_factory=Counter)
    notices: int = 0
    unverified: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    gaps: int = 0
    entered: int = 0
    faults: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.untraced or self.unverified or self.duplicates or self.lost
                    or self.gaps)


def audit(bench: Bench, env: dict[str, str], client: S3Client, bucket: str, since: datetime,
          placed: list[Placed], faults: list[tuple[str, datetime, datetime]]) -> Result:
    assert bench.asterisk is not None
    result = Result(faults=faults)
    report = reconcile(env, since)
    result.gaps, result.entered = len(report["gaps"]), len(report["entered"])
    manifests, recordings = bucket_contents(client, bucket)
    spool = bench.asterisk.recordings
    for path in spool.glob("[!.]*.json"):  # not shipped: counted lost, still a trace
        result.lost.append(f"{path.name}: still in the spool after the drain")
        manifests.append(CallManifest.read(path))
    for path in spool.glob("quarantine/**/*.json"):
        result.lost.append(f"{path.name}: quarantined by the uploader")
    routes = {p.number: p.route for p in placed}
    for p in placed:
        result.placed[p.route] += p.count
        result.answered[p.route] += sum(1 for s in p.statuses if s == 200)
    cdr = Reconciliation("", "")
    calls = cdr_calls(read_cdrs(bench.asterisk.cdr_csv, cdr), since)
    traces(result, calls, manifests, routes)
    duplicates_and_losses(result, manifests, recordings)
    notices(result, bench.asterisk.log_text(), manifests)
    return result


def reconcile(env: dict[str, str], since: datetime) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "callrec_cli", "reconcile", "--since",
                           since.isoformat(), "--json"], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    if not done.stdout:
        raise RuntimeError(f"callrec reconcile failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def bucket_contents(client: S3Client, bucket: str) -> tuple[list[CallManifest], dict[str, int]]:
    """Every manifest (newest version) and the size of every recording, by object key."""
    keys: list[str] = []
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                  Prefix=LAYOUT.prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(".json"):
                keys.append(key)
            elif key.endswith(".wav"):
                sizes[key] = obj["Size"]

    def get(key: str) -> CallManifest:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return CallManifest.model_validate_json(body)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(get, keys)), sizes


def cdr_calls(rows: Any, since: datetime) -> dict[str, list[CdrRow]]:
    """The soak's calls with a trunk party, by linked id."""
    calls: dict[str, list[CdrRow]] = defaultdict(list)
    for row in rows:
        if row.start >= since - SLACK and (_trunk(row.channel) or _trunk(row.dstchannel)):
            calls[row.linkedid or row.uniqueid].append(row)
    return calls


def _trunk(channel: str) -> bool:
    endpoint = channel.split("/", 1)[-1].rsplit("-", 1)[0] if "/" in channel else ""
    return fnmatch.fnmatchcase(endpoint, "trunk*")


def traces(result: Result, calls: dict[str, list[CdrRow]], manifests: list[CallManifest],
           routes: dict[str, str]) -> None:
    by_id: dict[str, CallManifest] = {}
    for m in manifests:
        for key in (m.asterisk_uniqueid, m.asterisk_linkedid):
            if key:
                by_id.setdefault(key, m)
    for linkedid, rows in calls.items():
        route = next((routes[r.src] for r in rows if r.src in routes), "outbound")
        result.in_cdr[route] += 1
        if not _owed(rows):
            result.not_owed[route] += 1
            continue
        found = next((by_id[k] for k in (linkedid, *(r.uniqueid for r in rows)) if k in by_id),
                     None)
        if found is None:
            first = rows[0]
            result.untraced.append(f"{linkedid} {first.start:%H:%M:%S} {first.src} -> "
                                   f"{first.dst} {first.disposition} {first.userfield}")
            continue
        result.traced[route] += 1
        if found.door != "none":
            result.by_trace["manifest"] += 1
        elif found.chain is not None and found.chain.chain.endswith(".archive"):
            result.by_trace["reconcile's ledger entry"] += 1
        else:
            result.by_trace["callrec's ledger entry"] += 1


def _owed(rows: list[CdrRow]) -> bool:
    """The promise: a call that reached a callrec door, or a bridged call (answered, with a
    party that is not a Local channel's half), leaves a trace. A call routed elsewhere that
    nobody answered (the outside number rang out before any door) owes none."""
    return any(r.at_door or (r.disposition == "ANSWERED" and r.dstchannel != ""
                             and not r.dstchannel.startswith("Local/")) for r in rows)


def duplicates_and_losses(result: Result, manifests: list[CallManifest],
                          recordings: dict[str, int]) -> None:
    seen: dict[str, str] = {}
    for m in manifests:
        other = seen.setdefault(m.asterisk_uniqueid, m.call_id)
        if other != m.call_id:
            result.duplicates.append(f"{m.asterisk_uniqueid}: {other} and {m.call_id}")
        if m.recording is None or m.recording.size is None:
            continue
        key = LAYOUT.base(m) + ".wav"
        if recordings.get(key) != m.recording.size:
            how = "absent" if key not in recordings else "of another size"
            result.lost.append(f"{m.call_id}: recording {how} in the bucket")


def notices(result: Result, log_text: str, manifests: list[CallManifest]) -> None:
    by_channel: dict[str, list[CallManifest]] = defaultdict(list)
    for m in manifests:
        if m.notice.played and not _proven(m, m.notice.started_at):
            result.unverified.append(f"{m.call_id}: manifest says a notice played, unproven")
        by_channel[m.asterisk_channel or ""].append(m)
        for leg in m.agents:
            if leg.notice is not None and leg.notice.played:
                by_channel[leg.channel].append(m)
    for line in log_text.splitlines():
        match = PLAYING.match(line)
        if match is None:
            continue
        at = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
        if at < min((m.entered_at for m in manifests), default=at) - SLACK:
            continue  # before the soak (the bench's log outlives a run)
        result.notices += 1
        if not any(_covers(m, at) for m in by_channel.get(match.group(2), [])):
            result.unverified.append(f"{match.group(2)} {match.group(3)} at {at:%H:%M:%S.%f}: "
                                     "no manifest with a recording verified before it")


def _covers(m: CallManifest, at: datetime) -> bool:
    end = m.ended_at or datetime.now(UTC)
    return m.entered_at - SLACK <= at <= end + SLACK and _proven(m, at + SLACK)


def _proven(m: CallManifest, at: datetime | None) -> bool:
    r = m.recording
    return (m.status is not RecordingStatus.UNRECORDED and r is not None and at is not None
            and r.verified_at is not None and r.verified_at <= at)


def table(r: Result, minutes: float) -> list[str]:
    routes = sorted(set(r.placed) | set(r.in_cdr))
    lines = [f"chaos: {minutes:g} min of calls, {len(r.faults)} faults",
             f"{'route':<20} {'placed':>7} {'answered':>9} {'in CDR':>7} {'traced':>7}"]
    for route in routes:
        lines.append(f"{route:<20} {r.placed[route]:>7} {r.answered[route]:>9} "
                     f"{r.in_cdr[route]:>7} {r.traced[route]:>7}")

    def total(c: Counter[str]) -> int:
        return sum(c.values())

    lines += [f"{'all':<20} {total(r.placed):>7} {total(r.answered):>9} {total(r.in_cdr):>7} "
              f"{total(r.traced):>7}",
              "traced by: " + ", ".join(f"{k} {v}" for k, v in sorted(r.by_trace.items())),
              f"untraced calls: {len(r.untraced)} (owing no trace: neither at a door nor "
              f"bridged: {total(r.not_owed)})",
              f"notices played (Asterisk's log): {r.notices}; without a verified recording: "
              f"{len(r.unverified)}",
              f"duplicate manifests: {len(r.duplicates)}", f"objects lost: {len(r.lost)}",
              f"reconcile: {r.entered} ledger entries written, {r.gaps} gaps left",
              "faults: " + "; ".join(f"{n} at {a:%H:%M:%S} ({(b - a).total_seconds():.0f} s)"
                                     for n, a, b in r.faults)]
    for title, items in (("untraced", r.untraced), ("unverified", r.unverified),
                         ("duplicate", r.duplicates), ("lost", r.lost)):
        lines += [f"  {title}: {item}" for item in items[:20]]
    lines.append("OK: every call traced, no notice without a verified recording" if r.ok
                 else "FAILED")
    return lines
