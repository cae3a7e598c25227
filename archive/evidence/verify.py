"""``callrec archive verify``: is the archive complete and unaltered?

It walks the bucket (every version of every manifest of the period, the recordings' listing,
the hosts' public keys and their chains' checkpoints: callrec/evidence/ledger.py) and reports, per
chain (host) and day, calls **verified**, **missing** (a chain entry or a checkpointed call the
bucket does not hold, or a call deleted), **altered** (a signature that does not verify, a
recording replaced, resized or gone, a checkpoint that does not match), **unsigned** (versions
from before sealing, or stripped of their signature), **chain breaks** (an entry that does not
name its predecessor's SHA-256, two entries with one number) and **checkpoints missing** (a
checkpoint that names a predecessor the bucket does not hold, entries no checkpoint covers long
after they were written).

The cost is one listing (of current objects) and one GET per call; only calls whose manifest
has later versions (outcome changes) have their versions listed and read. Recordings are checked
from the listing (the manifest's size, not replaced after the manifest was archived: the uploader
puts the recording first); ``--deep`` also reads them and compares SHA-256.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from callrec.evidence.ledger import EvidenceLayout, host_chains
from callrec.evidence.rules import ChainCheck, Checked, Checkpoint
from callrec.evidence.settings import EvidenceSettings
from callrec.ids import call_id_time, is_call_id
from callrec.manifest import AudioFormat, ChainLink, Recording
from callrec.s3.layout import Layout
from callrec.s3.store import Store
from callrec.s3.versions import (
    ObjectVersion,
    get_version,
    list_latest,
    list_prefixes,
    list_versions,
    oldest_first,
)
from callrec.signing import decode_sig, load_public, sha256_hex, signature_ok

KINDS = ("verified", "missing", "altered", "unsigned", "chain_breaks", "checkpoints_missing")
NO_CHAIN = "-"  # unsigned versions name no chain
AUDIO = frozenset(fmt.value for fmt in AudioFormat)  # a recording object's key suffixes


@dataclass(frozen=True)
class Problem:
    kind: str
    chain: str
    day: str
    call_id: str
    detail: str


@dataclass
class Report:
    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    versions: int = 0
    checkpoints: int = 0
    seconds: float = 0.0
    at: str = ""

    def count(self, kind: str, chain: str, day: str, call_id: str = "", detail: str = "",
              ) -> None:
        row = self.counts.setdefault((chain, day), dict.fromkeys(KINDS, 0))
        row[kind] += 1
        if kind != "verified":
            self.problems.append(Problem(kind, chain, day, call_id, detail))

    @property
    def ok(self) -> bool:
        return not self.problems

    def totals(self) -> dict[str, int]:
        return {k: sum(row[k] for row in self.counts.values()) for k in KINDS}

    def rows(self) -> list[dict[str, Any]]:
        return [{"chain": chain, "day": day, **row}
                for (chain, day), row in sorted(self.counts.items())]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "at": self.at, "seconds": round(self.seconds, 3),
                "versions": self.versions, "checkpoints": self.checkpoints,
                "totals": self.totals(), "rows": self.rows(),
                "problems": [asdict(p) for p in self.problems]}


class Verifier:
    def __init__(self, store: Store, layout: Layout, evidence: EvidenceSettings,
                 threads: int = 8) -> None:
        self.store, self.layout, self.evidence = store, layout, evidence
        self.ev = EvidenceLayout(evidence.prefix)
        self.threads = threads

    def run(self, since: date | None = None, host: str | None = None,
            deep: bool = False) -> Report:
        """One pass over the bucket, streamed: a call's objects are checked (in the pool) as
        the listing reaches them, at most ``4 x threads`` calls in flight; what stays in memory
        is each chain entry's few facts, not the manifests."""
        started, report = time.monotonic(), Report(at=datetime.now(UTC).isoformat())
        keys = self._keys()
        chains = ChainCheck(report.count, since, self._settle())
        with ThreadPoolExecutor(self.threads, "callrec-verify") as pool:
            checkpoints = self._checkpoints(pool, keys, since, host)
            calls = self._calls(since)
            for call in bounded(pool, calls, lambda c: self._check_call(c, keys, deep),
                                4 * self.threads):
                report.versions += len(call.versions)
                if _wanted(call.versions, host):
                    chains.add(call.versions)
                    report.count(*call.verdict)
        for name, cps in checkpoints.items():
            report.checkpoints += len(cps)
            chains.checkpoints(name, cps)
        chains.finish(host)
        report.seconds = time.monotonic() - started
        return report

    def _settle(self) -> timedelta:
        """How long an entry may wait for a checkpoint (the uploader's interval, thrice, plus
        time for a backlog to ship) before its absence is a problem."""
        return timedelta(seconds=3 * self.evidence.checkpoint_interval_s + 600)

    # -- reading the bucket ----------------------------------------------------------------------
    def _keys(self) -> dict[str, Any]:
        keys = {}
        for name, _ in self.store.list_keys(self.ev.keys):
            found = get_version(self.store, name)
            signer = name[len(self.ev.keys):].removesuffix(".pem")
            if found is not None:
                keys[signer] = load_public(found[0])
        return keys

    def _checkpoints(self, pool: ThreadPoolExecutor, keys: dict[str, Any], since: date | None,
                     host: str | None) -> dict[str, list[Checkpoint]]:
        names: list[str] = []
        for prefix in list_prefixes(self.store, self.ev.chains):
            chain = prefix[len(self.ev.chains):].rstrip("/")
            if host is None or chain in host_chains(host):
                start = self.ev.chain_day(chain, since) if since else ""
                names += [k for k, _ in self.store.list_keys(prefix, start)]
        found: dict[str, list[Checkpoint]] = defaultdict(list)
        for cp in pool.map(lambda name: _checkpoint(self.store, name, keys), names):
            found[cp.chain].append(cp)
        return found

    def _calls(self, since: date | None) -> Iterator[Listed]:
        """The listing, one call at a time: a call's ``.json`` and recording keys (``.wav``,
        ``.flac``, ``.opus``) are adjacent in key order."""
        marker = self.layout.day_start(since) if since else ""
        current: Listed | None = None
        for v in list_latest(self.store, self.layout.prefix, marker):
            base, ext = v.key.rsplit(".", 1) if "." in v.key else (v.key, "")
            if ext != "json" and ext not in AUDIO:
                continue
            if current is None or current.base != base:
                if current is not None and current.manifests:
                    yield current
                current = Listed(base)
            (current.manifests if ext == "json" else current.audio).append(v)
        if current is not None and current.manifests:
            yield current

    def _check(self, key: str, v: ObjectVersion, keys: dict[str, Any]) -> Checked:
        call_id = key.rsplit("/", 1)[-1].removesuffix(".json")
        day = f"{call_id_time(call_id):%Y-%m-%d}" if is_call_id(call_id) else "?"
        found = get_version(self.store, key, v.version_id)
        if found is None:
            return Checked(key, v.version_id, v.last_modified, call_id, day, "", None,
                           "altered", "version listed but unreadable")
        data, meta = found
        checked = Checked(key, v.version_id, v.last_modified, call_id, day, sha256_hex(data),
                          None, "ok", "")
        return _judge(checked, data, meta, keys)

    # -- one call (in the pool) -----------------------------------------------------------------
    def _check_call(self, listed: Listed, keys: dict[str, Any], deep: bool) -> CallChecked:
        key = listed.base + ".json"
        order = listed.manifests
        found = [self._check(key, v, keys) for v in order]
        if found[-1].changes or deep:
            # Later versions exist (or all is to be read): every version, and the recording's.
            every = list(list_versions(self.store, listed.base + "."))
            order = oldest_first([v for v in every if v.key == key])
            listed.audio = [v for v in every if v.key.rsplit(".", 1)[-1] in AUDIO
                            and v.key.rsplit(".", 1)[0] == listed.base]
            listed.versioned = True
            found = [self._check(key, v, keys) for v in order if not v.delete_marker]
        call_id = key.rsplit("/", 1)[-1].removesuffix(".json")
        first = found[0] if found else None
        chain = first.link.chain if first and first.link else NO_CHAIN
        day = first.day if first else "?"
        compact = [c.compact() for c in found]
        if not found or order[-1].delete_marker:
            return CallChecked(compact, ("missing", chain, day, call_id,
                                         "manifest deleted (delete marker)"))
        bad = [c for c in found if c.verdict != "ok"]
        altered = [c for c in bad if c.verdict == "altered"]
        if altered or bad:
            kind = "altered" if altered else "unsigned"
            return CallChecked(compact, (kind, chain, day, call_id, (altered or bad)[0].detail))
        problem = _recording(found[-1], listed, order[0], self.store, deep)
        verdict = ("altered", chain, day, call_id, problem) if problem else \
            ("verified", chain, day, call_id, "")
        return CallChecked(compact, verdict)


@dataclass
class Listed:
    """One call's object versions, as the listing gave them."""

    base: str
    manifests: list[ObjectVersion] = field(default_factory=list)
    audio: list[ObjectVersion] = field(default_factory=list)  # the recording's objects
    versioned: bool = False  # every version listed (else the current ones only)


@dataclass(frozen=True)
class CallChecked:
    versions: list[Checked]
    verdict: tuple[str, str, str, str, str]  # kind, chain, day, call id, detail


def bounded(pool: ThreadPoolExecutor, items: Iterator[Any], fn: Callable[[Any], Any],
            window: int) -> Iterator[Any]:
    """``fn`` over ``items`` in ``pool`` with at most ``window`` in flight; results as they
    come (any order)."""
    pending: set[Future[Any]] = set()
    for item in items:
        pending.add(pool.submit(fn, item))
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    for future in as_completed(pending):
        yield future.result()


def _wanted(found: list[Checked], host: str | None) -> bool:
    if host is None:
        return True
    first = found[0] if found else None
    chain = first.link.chain if first and first.link else NO_CHAIN
    return chain in host_chains(host)


def _judge(c: Checked, data: bytes, meta: dict[str, str], keys: dict[str, Any]) -> Checked:
    """The verdict on one manifest version from its bytes and metadata."""
    try:
        doc = json.loads(data)
        link = ChainLink.model_validate(doc["chain"]) if doc.get("chain") else None
    except (ValueError, KeyError, TypeError, ValidationError):
        return c.judged("altered", "not a manifest")
    c = c.with_facts(link, doc)
    if doc.get("call_id") != c.call_id:
        return c.judged("altered", f"manifest of {str(doc.get('call_id'))[:64]!r} under this key")
    signature = decode_sig(meta.get("signature", ""))
    if signature is None:
        return c.judged("unsigned", "no signature")
    if link is None:
        return c.judged("altered", "signed, but names no chain")
    public = keys.get(link.key)
    if public is None:
        return c.judged("altered", f"signed by {link.key}, a key the bucket does not hold")
    if not signature_ok(public, data, signature):
        return c.judged("altered", "signature does not verify (the bytes were changed)")
    return c


def _recording(latest: Checked, listed: Listed, archived: ObjectVersion,
               store: Store, deep: bool) -> str | None:
    """A problem with the recording objects the newest manifest version names (None: none):
    the WAV, or the uploader's transcode (and the WAV too if the original was kept)."""
    rec = latest.recording
    if latest.status == "unrecorded" or not rec or not rec.get("sha256"):
        return None
    try:
        objects = Recording.model_validate(rec).objects()
    except ValidationError:
        return "the manifest's recording facts are unreadable"
    for fmt, size, sha256 in objects:
        key = f"{listed.base}.{fmt.value}"
        problem = _object(key, [v for v in listed.audio if v.key == key], size, sha256,
                          listed.versioned, archived, store, deep)
        if problem:
            return problem if fmt is AudioFormat.WAV else f"{fmt.value}: {problem}"
    return None


def _object(key: str, versions: list[ObjectVersion], size: int | None, sha256: str | None,
            versioned: bool, archived: ObjectVersion, store: Store, deep: bool) -> str | None:
    """One recording object against the manifest's size and SHA-256. With every version
    listed, a second version is a replacement. From the current objects only: ``archived`` is
    the manifest's first version, and the uploader put the recording before it (in the
    store's own clock), so a recording written later was replaced. (ListObjectsV2 keeps the
    write time through tag, hold and retention changes; SeaweedFS's version listing does not,
    hence the two rules.)"""
    if not versions:
        return "recording missing"
    versions = oldest_first(versions)
    if versions[-1].delete_marker:
        return "recording deleted (delete marker)"
    if len(versions) > 1:
        return f"recording replaced ({len(versions)} versions)"
    if not versioned and versions[0].last_modified > archived.last_modified:
        return "recording replaced after its manifest was archived"
    if versions[0].size != size:
        return f"recording is {versions[0].size} bytes, the manifest says {size}"
    if deep:
        found = get_version(store, key, versions[0].version_id)
        if found is None or sha256_hex(found[0]) != sha256:
            return "recording's SHA-256 differs from the manifest's"
    return None


def _checkpoint(store: Store, name: str, keys: dict[str, Any]) -> Checkpoint:
    chain = name.split("/chains/", 1)[-1].split("/", 1)[0]
    found = get_version(store, name)
    if found is None:
        return Checkpoint.failed(name, chain, "listed but unreadable")
    data, meta = found
    try:
        body = json.loads(data)
        signer = str(body["key"])
    except (ValueError, KeyError, TypeError):
        return Checkpoint.failed(name, chain, "not a checkpoint")
    signature = decode_sig(meta.get("signature", ""))
    public = keys.get(signer)
    if signature is None or public is None or not signature_ok(public, data, signature):
        return Checkpoint.failed(name, chain, "checkpoint signature does not verify")
    return Checkpoint.of(name, chain, sha256_hex(data), body)


def problems_by_kind(report: Report) -> Iterator[tuple[str, int]]:
    totals = report.totals()
    for kind in KINDS[1:]:
        yield kind, totals[kind]
