"""``callrec verify-bundle`` and ``callrec keys``: evidence commands that are not the archive's
(a bundle is checked anywhere, without settings; keys live on each recording host)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COMMANDS = ("verify-bundle", "keys", "reconcile")


def add_parsers(sub: Any) -> None:
    bundle = sub.add_parser("verify-bundle", help="check an evidence bundle (what its README "
                            "does with sha256sum and openssl); exit 1 if anything is off")
    bundle.add_argument("bundle", type=Path, metavar="FILE.zip")
    rec = sub.add_parser("reconcile", help="compare Asterisk's CDRs with the manifests: every "
                         "call bridged with a trunk or sent to callrec has a trace (a call "
                         "that came while callrec was down gets its ledger entry); exit 1 on "
                         "gaps")
    rec.add_argument("--since", type=_when, required=True, metavar="DATE|TIME",
                     help="UTC date or ISO time")
    rec.add_argument("--until", type=_when, metavar="DATE|TIME",
                     help="default and at most: now minus reconcile.settle_s (later is "
                     "clamped, and said so)")
    rec.add_argument("--cdr", type=Path, metavar="FILE", help="cdr_csv Master.csv "
                     "(default: reconcile.cdr)")
    rec.add_argument("--dry-run", action="store_true", help="report only: write no ledger "
                     "entry for the turned-away calls found")
    rec.add_argument("--json", action="store_true")
    rec.add_argument("--metrics-file", type=Path, metavar="FILE")
    keys = sub.add_parser("keys", help="this host's signing keys (evidence)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    keys_sub.add_parser("show", help="the key in use and every key this host has used")
    keys_sub.add_parser("rotate", help="make a new key current (old manifests still verify) "
                        "and publish it to the bucket")


def run(args: argparse.Namespace, load_settings: Any) -> int:
    if args.command == "verify-bundle":
        from archive.cli.evidence import bundle_exit

        return bundle_exit(args.bundle)
    if args.command == "reconcile":
        return _reconcile(args, load_settings)
    from callrec.evidence.keys import HostKey
    from callrec.evidence.ledger import Ledger
    from callrec.s3.store import Store
    from uploader.config import UploaderSettings

    config = load_settings(UploaderSettings, args)
    if args.action == "show":
        key = HostKey(config.evidence)
        print(f"in use: {key.signer}")
        for key_id, pem in key.public_keys().items():
            print(f"{config.evidence.host}/{key_id}:\n{pem.decode()}")
        return 0
    store = Store(config.s3)
    try:
        old, new = Ledger(store, config.evidence, config.evidence.host).rotate_key()
    finally:
        store.close()
    print(f"{config.evidence.host}: key {old} -> {new} (published; running services sign with "
          "it from their next manifest on)")
    return 0


def _when(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _reconcile(args: argparse.Namespace, load_settings: Any) -> int:
    from archive.cli import run as run_archive
    from archive.cli.evidence import reconcile_exit
    from archive.config import ArchiveSettings

    return run_archive(args, load_settings(ArchiveSettings, args), reconcile_exit, "reconcile")
