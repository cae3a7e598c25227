"""``callrec reconcile``: does every call Asterisk itself logged have its trace?

Asterisk's CDRs (cdr_csv's ``Master.csv``, with ``loguniqueid`` and ``newcdrcolumns`` so rows carry
the unique and linked ids; testbench/conf/cdr.conf) are compared with the manifests of the period
(in the bucket, and those still waiting in the spool). A call must leave a manifest or a ledger
entry when a trunk party was bridged with someone (answered) or it reached a callrec door: the
dialplan marks the CDR's userfield at each door (``callrec``) and on the app-down path
(``callrec:app_down:<policy>:<DID>``, dialplan/callrec.conf); without those columns, a last
application of callrec's Stasis app or FastAGI counts too. A call without one is a **gap**,
reported with Asterisk's identifiers: a call routed around callrec while the safety net was blind,
a manifest lost before it was shipped. A call that found callrec down and ended before callrec was
back (so nothing saw it) is no failure of the archive's: callers were turned away, and the archive
must say so. Such a call gets its ledger entry from here (archive/evidence/turned_away.py), sealed
in the archive's chain, and counts as traced.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archive.config import ReconcileSettings
from callrec.s3.layout import Layout
from callrec.s3.store import Store

# cdr_csv.c build_csv_record: 16 columns, then uniqueid (loguniqueid), userfield (loguserfield),
# then peeraccount, linkedid, sequence (newcdrcolumns).
BASE = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
        "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
DOWN_MARK = "callrec:app_down"  # dialplan/callrec.conf, callrec-cdr-mark


@dataclass(frozen=True)
class CdrRow:
    start: datetime
    end: datetime | None
    src: str
    dst: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    disposition: str
    uniqueid: str
    linkedid: str
    answer: datetime | None = None
    clid: str = ""
    userfield: str = ""  # "" when cdr.conf has no loguserfield

    @property
    def marks(self) -> set[str]:
        """callrec's marks in the userfield (cdr.c joins party A's and B's with ";")."""
        return {m for m in re.split(r"[|;]", self.userfield) if m.startswith("callrec")}

    @property
    def at_door(self) -> bool:
        return bool(self.marks) or (self.lastapp == "Stasis" and
                                    self.lastdata.startswith("callrec")) or \
            (self.lastapp == "AGI" and "callrec" in self.lastdata)

    @property
    def down(self) -> tuple[str, str]:
        """The app-down path's policy ("optional", "force") and the DID it came in on (the
        CDR's dst is where the dialplan went next); ("", "") if it did not take that path."""
        for mark in sorted(self.marks):
            if mark.startswith(DOWN_MARK + ":"):
                policy, _, did = mark[len(DOWN_MARK) + 1:].partition(":")
                return policy, did
        return "", ""


@dataclass
class Gap:
    linkedid: str
    uniqueid: str
    start: str
    src: str
    dst: str
    channel: str
    dstchannel: str
    disposition: str
    at_door: bool = False
    down_policy: str = ""  # it found callrec down ("optional", "force"): turned away
    did: str = ""  # the DID it came in on, from the app-down mark


@dataclass
class Reconciliation:
    since: str
    until: str
    calls: int = 0
    traced: int = 0
    gaps: list[Gap] = field(default_factory=list)
    unreadable_rows: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)  # traces without a door, by reason
    at_door: int = 0  # calls that reached a callrec door
    # The --until asked for, when it was later than now minus settle_s (the window was clamped)
    clamped_from: str = ""
    entered: list[str] = field(default_factory=list)  # ledger entries written by this run
    # Turned-away calls found without a trace: their CDR rows, for their ledger entries
    turned_away: dict[str, list[CdrRow]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.gaps

    def traced_now(self, linkedid: str, call_id: str, reason: str) -> None:
        """The gap of ``linkedid`` got its ledger entry ``call_id``."""
        self.gaps = [g for g in self.gaps if g.linkedid != linkedid]
        self.turned_away.pop(linkedid, None)
        self.traced += 1
        self.entered.append(call_id)
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "since": self.since, "until": self.until,
                "clamped_from": self.clamped_from, "calls": self.calls,
                "at_door": self.at_door, "traced": self.traced,
                "unreadable_rows": self.unreadable_rows, "ledger_reasons": self.by_reason,
                "entered": self.entered, "gaps": [asdict(g) for g in self.gaps]}


def read_cdrs(path: Path, report: Reconciliation) -> Iterator[CdrRow]:
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) not in (20, 21):  # without the id columns a row cannot be matched
                report.unreadable_rows += 1
                continue
            try:
                yield _row(row)
            except ValueError:
                report.unreadable_rows += 1


def _row(row: list[str]) -> CdrRow:
    cols = dict(zip(BASE, row, strict=False))

    def when(text: str) -> datetime | None:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if text \
            else None

    start = when(cols["start"])
    if start is None:
        raise ValueError("no start time")
    return CdrRow(start, when(cols["end"]), cols["src"], cols["dst"], cols["channel"],
                  cols["dstchannel"], cols["lastapp"], cols["lastdata"], cols["disposition"],
                  row[16], row[-2], when(cols["answer"]), cols["clid"],
                  row[17] if len(row) == 21 else "")


class Reconciler:
    def __init__(self, store: Store, layout: Layout, settings: ReconcileSettings,
                 spool: Path | None, threads: int = 8) -> None:
        self.store, self.layout, self.settings = store, layout, settings
        self.spool, self.threads = spool, threads

    def run(self, since: datetime, until: datetime | None = None) -> Reconciliation:
        latest = datetime.now(UTC) - timedelta(seconds=self.settings.settle_s)
        report = Reconciliation(since.isoformat(), min(until or latest, latest).isoformat())
        if until is not None and until > latest:
            # Said, not silent: an operator checking a fault that just happened would see
            # "0 calls" and believe it.
            report.clamped_from = until.isoformat()
        until = min(until or latest, latest)
        calls: dict[str, list[CdrRow]] = defaultdict(list)
        for row in read_cdrs(self.settings.cdr, report):
            if since <= row.start < until and (row.end is None or row.end < until) \
                    and self._needs_trace(row):
                calls[row.linkedid or row.uniqueid].append(row)
        ids, reasons = self._traces(since - timedelta(days=1))
        report.calls = len(calls)
        for linkedid, rows in sorted(calls.items(), key=lambda item: item[1][0].start):
            report.at_door += any(r.at_door for r in rows)
            found = {linkedid, *(r.uniqueid for r in rows)} & ids
            if found:
                report.traced += 1
                for key in found:
                    if key in reasons:
                        report.by_reason[reasons[key]] = report.by_reason.get(reasons[key], 0) + 1
                        break
            else:
                report.gaps.append(self._gap(linkedid, rows))
                if report.gaps[-1].down_policy:
                    report.turned_away[linkedid] = rows
        return report

    def _gap(self, linkedid: str, rows: list[CdrRow]) -> Gap:
        first = next((r for r in rows if self.is_trunk(r.channel)), rows[0])  # the caller's
        policy, did = next((r.down for r in rows if r.down[0]), ("", ""))
        return Gap(linkedid, first.uniqueid, first.start.isoformat(), first.src, first.dst,
                   first.channel, first.dstchannel, first.disposition,
                   any(r.at_door for r in rows), policy, did)

    def is_trunk(self, channel: str) -> bool:
        endpoint = channel.split("/", 1)[-1].rsplit("-", 1)[0] if "/" in channel else ""
        return any(fnmatch.fnmatchcase(endpoint, p) for p in self.settings.trunks)

    def _needs_trace(self, row: CdrRow) -> bool:
        if not (self.is_trunk(row.channel) or self.is_trunk(row.dstchannel)):
            return False
        if row.dstchannel and row.disposition == "ANSWERED" and \
                not row.dstchannel.startswith("Local/"):
            return True  # a trunk party was bridged with someone
        return row.at_door

    def _traces(self, since: datetime) -> tuple[set[str], dict[str, str]]:
        """The unique and linked ids of every manifest from ``since`` on (bucket and spool),
        and the reason of those that are ledger entries (door ``none``)."""
        ids: set[str] = set()
        reasons: dict[str, str] = {}
        start = self.layout.day_start(since.date())
        keys = [k for k, _ in self.store.list_keys(self.layout.prefix, start)
                if k.endswith(".json")]
        with ThreadPoolExecutor(self.threads, "callrec-reconcile") as pool:
            bodies = list(pool.map(self.store.get_bytes, keys))
        if self.spool is not None and self.spool.is_dir():
            bodies += [p.read_bytes() for p in self.spool.glob("*.json")
                       if not p.name.startswith(".")]
        for body in bodies:
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                continue
            mine = {str(doc.get("asterisk_uniqueid") or ""), str(doc.get("asterisk_linkedid")
                                                                  or "")} - {""}
            ids |= mine
            if doc.get("door") == "none":
                reasons.update(dict.fromkeys(mine, str(doc.get("status_reason") or "")))
        return ids, reasons
