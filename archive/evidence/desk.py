"""Evidence actions of the archive, for the CLI and the web UI alike: verify the archive (admins)
and export evidence bundles (supervisors). Both only read the bucket, and both are audited:
an export under each call it holds, with the bundle's SHA-256, so the audit log says who handed
which call to whom and which file it was."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from archive.evidence.bundle import BundleError, BundleWriter
from archive.evidence.reconcile import Reconciler, Reconciliation
from archive.evidence.turned_away import ledger_entry
from archive.evidence.verify import KINDS, Report, Verifier
from archive.service import ActionFailed, Actor, Archive
from callrec.s3.store import StoreError
from callrec.signing import SealError

log = logging.getLogger(__name__)


class EvidenceDesk:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        settings = archive.settings
        self.verifier = Verifier(archive.store, archive.layout, settings.evidence,
                                 settings.archive.sync_concurrency)
        self.bundles = BundleWriter(archive.store, archive.layout, settings.evidence.prefix,
                                    archive.call_audit)
        self.reconciler = Reconciler(archive.store, archive.layout, settings.reconcile,
                                     settings.archive.spool, settings.archive.sync_concurrency)
        self.last: Report | None = None

    def reconcile(self, actor: Actor, since: datetime, until: datetime | None = None,
                  enter: bool = True) -> Reconciliation:
        """``enter``: write the ledger entries of turned-away calls found (else only report)."""
        self.archive.allow(actor, "reconcile", None)
        with self.archive.failing(actor, "reconcile", None):
            result = self.reconciler.run(since, until)
        if enter:
            self._enter_turned_away(actor, result)
        self.archive.audit(actor, "reconcile", None, since=result.since, until=result.until,
                           calls=result.calls, gaps=len(result.gaps),
                           entered=len(result.entered))
        if result.clamped_from:
            log.warning("reconcile: calls that ended after %s are left for a later run (settle_s "
                        "%.0f); asked until %s", result.until,
                        self.archive.settings.reconcile.settle_s, result.clamped_from)
        if result.gaps:
            log.error("reconcile: %d call(s) of %d have no manifest and no ledger entry",
                      len(result.gaps), result.calls)
        return result

    def _enter_turned_away(self, actor: Actor, result: Reconciliation) -> None:
        for linkedid, rows in list(result.turned_away.items()):
            gap = next(g for g in result.gaps if g.linkedid == linkedid)
            m = ledger_entry(rows, linkedid, gap.down_policy, gap.did,
                             self.reconciler.is_trunk)
            self.archive.enter(actor, m, "reconcile", uniqueid=m.asterisk_uniqueid,
                               linkedid=linkedid)
            result.traced_now(linkedid, m.call_id, str(m.status_reason))
            log.warning("%s reconcile: %s from %s came while callrec was down (policy %s) and "
                        "left no trace; its ledger entry is written", m.call_id, linkedid,
                        m.caller.number or "-", gap.down_policy)

    def verify(self, actor: Actor, since: date | None = None, host: str | None = None,
               deep: bool = False) -> Report:
        self.archive.allow(actor, "verify", None)
        with self.archive.failing(actor, "verify", None):
            report = self.verifier.run(since, host, deep)
        self.last = report
        self.archive.audit(actor, "verify", None, since=str(since or ""), host=host or "",
                           deep=deep, ok=report.ok, **report.totals())
        if not report.ok:
            log.error("archive verify: %d problem(s): %s", len(report.problems),
                      report.totals())
        return report

    def export(self, actor: Actor, call_ids: list[str], out: Path) -> str:
        """The bundle of ``call_ids`` written to ``out``; returns its SHA-256."""
        for call_id in call_ids:
            self.archive.allow(actor, "evidence", call_id)
        try:
            digest = self.bundles.write(call_ids, out, f"{actor.name} ({actor.role}, "
                                                       f"{actor.via})")
        except (BundleError, StoreError, SealError, OSError) as exc:
            # Audited under each call (not archive.failing's one row): "who tried to hand
            # over this call" must find failed attempts too.
            for call_id in call_ids:
                self.archive.audit(actor, "evidence", call_id, error=str(exc))
            if isinstance(exc, BundleError):
                raise
            raise ActionFailed(str(exc)) from exc
        for call_id in call_ids:
            self.archive.audit(actor, "evidence", call_id, bundle_sha256=digest,
                               calls=len(call_ids))
        self.archive.ship_audit()
        return digest


class VerifyMetrics:
    """``callrec_archive_verify_*``: served by the web server (which verifies on a schedule)
    or written to a node-exporter textfile by ``callrec archive verify --metrics-file``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.problems = Gauge("callrec_archive_verify_problems",
                              "Problems the last archive verify found, by kind", ["kind"],
                              registry=self.registry)
        self.verified = Gauge("callrec_archive_verify_calls_verified",
                              "Calls the last archive verify found complete and unaltered",
                              registry=self.registry)
        self.last_run = Gauge("callrec_archive_verify_last_run_timestamp_seconds",
                              "When the last archive verify ended (Unix time)",
                              registry=self.registry)
        self.seconds = Gauge("callrec_archive_verify_duration_seconds",
                             "How long the last archive verify took", registry=self.registry)

    def publish(self, report: Report) -> None:
        totals = report.totals()
        for kind in KINDS[1:]:
            self.problems.labels(kind).set(totals[kind])
        self.verified.set(totals["verified"])
        self.seconds.set(report.seconds)
        self.last_run.set_to_current_time()

    def write(self, path: Path) -> None:
        write_to_textfile(str(path), self.registry)


class ReconcileMetrics:
    """``callrec_reconcile_*`` for a node-exporter textfile (``--metrics-file``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Gauge("callrec_reconcile_calls", "Calls in the CDRs of the last "
                           "reconciliation that needed a trace, by result", ["result"],
                           registry=self.registry)
        self.last_run = Gauge("callrec_reconcile_last_run_timestamp_seconds",
                              "When the last reconciliation ended (Unix time)",
                              registry=self.registry)

    def publish(self, result: Reconciliation) -> None:
        self.calls.labels("traced").set(result.traced)
        self.calls.labels("gap").set(len(result.gaps))
        self.last_run.set_to_current_time()

    def write(self, path: Path) -> None:
        write_to_textfile(str(path), self.registry)
