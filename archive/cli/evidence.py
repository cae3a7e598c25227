"""``callrec archive verify`` and ``callrec archive export``: the evidence actions on the
command line (archive/evidence/desk.py does the work and the auditing)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from archive.evidence.desk import EvidenceDesk, ReconcileMetrics, VerifyMetrics
from archive.evidence.verify import KINDS, Report
from archive.render import dumps, table
from archive.service import Actor, Archive

ACTIONS = ("verify", "export")


def add_parsers(cmds: Any) -> None:
    verify = cmds.add_parser("verify", help="check the archive is complete and unaltered "
                             "(signatures, chains, checkpoints); exit 1 on any problem")
    verify.add_argument("--since", type=date.fromisoformat, metavar="DATE",
                        help="calls from this UTC date on (default: all)")
    verify.add_argument("--host", help="only this host's chains")
    verify.add_argument("--deep", action="store_true",
                        help="also read every recording and compare its SHA-256")
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--metrics-file", type=Path, metavar="FILE",
                        help="also write the result as Prometheus text (node exporter)")
    export = cmds.add_parser("export", help="an evidence bundle of calls (zip, ja/en README)")
    export.add_argument("call_ids", nargs="+", metavar="CALL_ID")
    export.add_argument("--to", type=Path, required=True, metavar="FILE.zip")


def run(archive: Archive, actor: Actor, args: argparse.Namespace) -> int:
    desk = EvidenceDesk(archive)
    if args.action == "export":
        digest = desk.export(actor, args.call_ids, args.to)
        print(f"{args.to}: {len(args.call_ids)} call(s), SHA-256 {digest}")
        print("check it with `callrec verify-bundle` or by its README.txt (sha256sum, openssl)")
        return 0
    report = desk.verify(actor, args.since, args.host, args.deep)
    if args.metrics_file is not None:
        metrics = VerifyMetrics()
        metrics.publish(report)
        metrics.write(args.metrics_file)
    print(dumps(report.as_dict()) if args.json else text(report))
    return 0 if report.ok else 1


def text(report: Report) -> str:
    lines = [table(report.rows(), ("chain", "day", *KINDS), width=40)] if report.rows() else \
        ["(no calls and no checkpoints in this period)"]
    for p in report.problems[:200]:
        lines.append(f"{p.kind}: {p.chain} {p.day} {p.call_id or '-'}: {p.detail}")
    if len(report.problems) > 200:
        lines.append(f"... and {len(report.problems) - 200} more (--json lists all)")
    totals = report.totals()
    lines.append(f"{'OK' if report.ok else 'PROBLEMS'}: {report.versions} manifest version(s), "
                 f"{report.checkpoints} checkpoint(s) in {report.seconds:.1f} s; "
                 + ", ".join(f"{k} {totals[k]}" for k in KINDS))
    return "\n".join(lines)


def bundle_exit(path: Path) -> int:
    """``callrec verify-bundle``."""
    from archive.evidence.bundle_check import verify_bundle

    report = verify_bundle(path)
    for line in report.checked:
        print(f"ok: {line}")
    for line in report.problems:
        print(f"PROBLEM: {line}", file=sys.stderr)
    print("bundle verified" if report.ok else "bundle NOT verified",
          file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def reconcile_exit(archive: Archive, actor: Actor, args: argparse.Namespace) -> int:
    """``callrec reconcile``."""
    if args.cdr is not None:
        archive.settings.reconcile.cdr = args.cdr
    result = EvidenceDesk(archive).reconcile(actor, args.since, args.until,
                                             enter=not args.dry_run)
    if args.metrics_file is not None:
        metrics = ReconcileMetrics()
        metrics.publish(result)
        metrics.write(args.metrics_file)
    if args.json:
        print(dumps(result.as_dict()))
    else:
        if result.gaps:
            print(table([vars(g) for g in result.gaps], ("start", "src", "dst", "channel",
                        "dstchannel", "disposition", "down_policy", "uniqueid", "linkedid"),
                        width=40))
        if result.clamped_from:
            print(f"note: asked until {result.clamped_from}; calls that ended after "
                  f"{result.until} (reconcile.settle_s ago) are left for a later run")
        print(f"{'OK' if result.ok else 'GAPS'}: {result.calls} call(s) from {result.since} to "
              f"{result.until} ({result.at_door} at a callrec door): {result.traced} traced, "
              f"{len(result.gaps)} without manifest or ledger entry; ledger-only by reason: "
              f"{result.by_reason or '-'}"
              + (f"; {len(result.entered)} ledger entr(ies) written now for calls that came "
                 "while callrec was down" if result.entered else "")
              + (f"; {result.unreadable_rows} CDR row(s) unreadable"
                 if result.unreadable_rows else ""))
    return 0 if result.ok else 1
