"""The chain half of ``callrec archive verify``: entries in order, each naming its predecessor,
and the checkpoints that vouch for them (callrec/evidence/, callrec/evidence/ledger.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from callrec.evidence.ledger import host_chains
from callrec.ids import call_id_time, is_call_id
from callrec.manifest import ChainLink

Count = Callable[[str, str, str, str, str], None]  # kind, chain, day, call id, detail


@dataclass(frozen=True)
class Checked:
    """One manifest version as verify found it."""

    key: str
    version_id: str
    modified: datetime
    call_id: str
    day: str
    sha256: str
    link: ChainLink | None
    verdict: str  # ok | unsigned | altered
    detail: str
    status: str = ""
    recording: dict[str, Any] | None = None
    # Versions before this one that it tells of: each outcome change it lists made one, and
    # a transcode's version (``recording.archived``) follows the call flow's.
    changes: int = 0

    def compact(self) -> Checked:
        """What the chain check keeps of it (no key, no recording facts)."""
        return replace(self, key="", version_id="", recording=None, status="", detail="")

    def judged(self, verdict: str, detail: str) -> Checked:
        return replace(self, verdict=verdict, detail=detail)

    def with_facts(self, link: ChainLink | None, doc: dict[str, Any]) -> Checked:
        recording = doc.get("recording")
        changes = doc.get("outcome_changes")
        rec = recording if isinstance(recording, dict) else None
        return replace(self, link=link, status=str(doc.get("status", "")), recording=rec,
                       changes=(len(changes) if isinstance(changes, list) else 0)
                       + (1 if rec and rec.get("archived") else 0))


@dataclass(frozen=True)
class Checkpoint:
    name: str
    chain: str
    sha256: str
    seq: int
    previous: dict[str, Any] | None
    entries: tuple[tuple[int, str, str], ...]
    broken: str = ""

    @property
    def day(self) -> str:
        parts = self.name.rsplit("/", 4)
        return "-".join(parts[1:4]) if len(parts) == 5 else "?"

    @classmethod
    def of(cls, name: str, chain: str, sha256: str, body: dict[str, Any]) -> Checkpoint:
        try:
            entries = tuple((int(s), str(c), str(h)) for s, c, h in body.get("entries", []))
            previous = body.get("previous")
            return cls(name, chain, sha256, int(body["seq"]),
                       previous if isinstance(previous, dict) else None, entries)
        except (KeyError, TypeError, ValueError):
            return cls.failed(name, chain, "not a checkpoint")

    @classmethod
    def failed(cls, name: str, chain: str, detail: str) -> Checkpoint:
        return cls(name, chain, "", 0, None, (), detail)


def day_of(call_id: str) -> str:
    return f"{call_id_time(call_id):%Y-%m-%d}" if is_call_id(call_id) else ""


class ChainCheck:
    def __init__(self, count: Count, since: date | None, settle: timedelta) -> None:
        self.count, self.since, self.settle = count, since, settle
        self.entries: dict[str, dict[int, list[Checked]]] = defaultdict(lambda: defaultdict(list))
        self.altered: dict[str, set[int]] = defaultdict(set)
        self.cps: dict[str, list[Checkpoint]] = {}

    def add(self, versions: list[Checked]) -> None:
        for c in versions:
            if c.link is None:
                continue
            if c.verdict == "ok":
                self.entries[c.link.chain][c.link.seq].append(c)
            elif c.verdict == "altered":  # present, but its link cannot be trusted
                self.altered[c.link.chain].add(c.link.seq)

    def checkpoints(self, chain: str, cps: list[Checkpoint]) -> None:
        self.cps[chain] = sorted(cps, key=lambda cp: (cp.seq, cp.name))

    def finish(self, host: str | None) -> None:
        for chain in sorted(set(self.entries) | set(self.cps)):
            if host is None or chain in host_chains(host):
                self._chain(chain)

    def _chain(self, chain: str) -> None:
        entries, cps = self.entries.get(chain, {}), self.cps.get(chain, [])
        good = [cp for cp in cps if not cp.broken]
        for cp in cps:
            if cp.broken:
                self.count("altered", chain, cp.day, "", f"{cp.name}: {cp.broken}")
        self._forks(chain, entries)
        self._sequence(chain, entries, good)
        self._checkpoint_links(chain, good)
        self._uncovered(chain, entries, good)

    def _forks(self, chain: str, entries: dict[int, list[Checked]]) -> None:
        for seq, versions in sorted(entries.items()):
            if len({c.sha256 for c in versions}) > 1:
                self.count("chain_breaks", chain, versions[0].day, versions[0].call_id,
                           f"entry {seq} claimed by {len(versions)} different versions")

    def _sequence(self, chain: str, entries: dict[int, list[Checked]],
                  cps: list[Checkpoint]) -> None:
        named = {seq: (call_id, sha) for cp in cps for seq, call_id, sha in cp.entries}
        present = set(entries) | self.altered[chain]
        if self.since is None:
            start = 1
        else:
            in_range = [s for s, (c, _) in named.items() if day_of(c) >= f"{self.since}"]
            start = min(present | set(in_range), default=1)
        end = max([*present, *(cp.seq for cp in cps)], default=0)
        for seq in range(start, end + 1):
            if seq not in present:
                self._missing(chain, seq, named.get(seq), entries)
                continue
            if seq not in entries:
                continue
            here = entries[seq][0]
            before = entries.get(seq - 1)
            if before and here.link and here.link.prev != before[0].sha256:
                self.count("chain_breaks", chain, here.day, here.call_id,
                           f"entry {seq} does not name entry {seq - 1} (re-ordered or replaced)")
            if seq in named and named[seq][1] not in {c.sha256 for c in entries[seq]}:
                self.count("altered", chain, here.day, here.call_id,
                           f"entry {seq} differs from its checkpoint")

    def _missing(self, chain: str, seq: int, named: tuple[str, str] | None,
                 entries: dict[int, list[Checked]]) -> None:
        call_id = named[0] if named else ""
        day = day_of(call_id) or _near_day(entries, seq)
        if self.since is not None and day and day < f"{self.since}":
            return  # before the period asked for
        self.count("missing", chain, day or "?", call_id,
                   f"entry {seq} of chain {chain} is not in the bucket")

    def _checkpoint_links(self, chain: str, cps: list[Checkpoint]) -> None:
        for before, cp in zip([None, *cps], cps, strict=False):
            if before is None:
                if self.since is None and cp.previous is not None:
                    self.count("checkpoints_missing", chain, cp.day, "",
                               f"{cp.name} follows a checkpoint the bucket does not hold")
            elif cp.previous is None or cp.previous.get("sha256") != before.sha256:
                self.count("checkpoints_missing", chain, cp.day, "",
                           f"{cp.name} does not follow {before.name}")

    def _uncovered(self, chain: str, entries: dict[int, list[Checked]],
                   cps: list[Checkpoint]) -> None:
        covered = max((cp.seq for cp in cps), default=0)
        now = datetime.now(UTC)
        for seq, versions in sorted(entries.items()):
            c = versions[0]
            if seq > covered and now - c.modified > self.settle:
                self.count("checkpoints_missing", chain, c.day, c.call_id,
                           f"entry {seq} is covered by no checkpoint")


def _near_day(entries: dict[int, list[Checked]], seq: int) -> str:
    for other in (seq + 1, seq - 1):
        if other in entries:
            return entries[other][0].day
    return ""
