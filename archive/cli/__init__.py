"""``callrec archive``: sync, search, show, get, url, outcome, hold, release, verify, export
(and the web UI).

The CLI runs with the archive's S3 credentials, so its user acts as ``admin``; each action is
audited under the login name (``$SUDO_USER`` first). Caller names and numbers are untrusted:
tables show control and bidi characters as escapes, ``--json`` escapes all non-ASCII.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archive import ArchiveError
from archive.auth import hash_password, token_digest
from archive.catalog import Query
from archive.catalog.backends import migrate as migrate_catalog
from archive.cli.evidence import ACTIONS as EVIDENCE_ACTIONS
from archive.cli.evidence import add_parsers as add_evidence_parsers
from archive.cli.evidence import run as run_evidence
from archive.config import ROLES, ArchiveSettings
from archive.render import dumps, inert, table
from archive.service import Actor, Archive

COLUMNS = ("call_id", "entered_at", "caller", "caller_name", "agent", "did", "outcome", "status",
           "duration_s", "legal_hold")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("archive", help="find, play, re-classify and hold archived calls",
                            description="find, play, re-classify and hold archived calls")
    cmds = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = cmds.add_parser("sync", help="update the catalog from the manifests in S3")
    sync.add_argument("--full", action="store_true", help="list every key, not recent days")
    sync.add_argument("--rebuild", action="store_true", help="empty the catalog and rebuild it")
    search = cmds.add_parser("search", help="search the catalog (newest first)")
    _search_args(search)
    show = cmds.add_parser("show", help="a call's catalog row and archived manifest")
    show.add_argument("call_id")
    show.add_argument("--json", action="store_true")
    get = cmds.add_parser("get", help="download recordings, verifying their SHA-256")
    get.add_argument("call_ids", nargs="+", metavar="CALL_ID")
    get.add_argument("--to", type=Path, default=Path("."), help="directory (default: here)")
    url = cmds.add_parser("url", help="print a presigned URL of the recording")
    url.add_argument("call_id")
    url.add_argument("--expires", type=int, help="seconds (default from config, capped)")
    outcome = cmds.add_parser("outcome", help="set a call's outcome (tags, retention rule)")
    outcome.add_argument("call_id")
    outcome.add_argument("outcome")
    for name, text in (("hold", "put a legal hold on the call's objects"),
                       ("release", "release the call's legal hold")):
        cmds.add_parser(name, help=text).add_argument("call_id")
    audit = cmds.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true")
    add_evidence_parsers(cmds)
    cmds.add_parser("serve", help="run the web UI and JSON API")
    migrate = cmds.add_parser("migrate", help="bring the catalog's schema up to this release "
                              "(PostgreSQL; safe on two servers at once)")
    migrate.add_argument("--from-sqlite", type=Path, metavar="FILE",
                         help="then copy this SQLite catalog into the (new, empty) database, "
                         "checked row by row")
    cmds.add_parser("hash-password", help="hash a password for [web.users] (read from stdin "
                    "or asked twice)")
    token = cmds.add_parser("token", help="make an API token; prints it and its config entry")
    token.add_argument("name")
    token.add_argument("--role", choices=ROLES, default="supervisor")


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--caller", default="", help="exact number, any spelling")
    p.add_argument("--caller-prefix", default="", help="number prefix, e.g. 03 or +8190")
    p.add_argument("--agent", default="")
    p.add_argument("--outcome", default="")
    p.add_argument("--did", default="")
    p.add_argument("--status", choices=("recorded", "unrecorded", "interrupted"))
    p.add_argument("--since", type=when, help="UTC date or ISO time (inclusive)")
    p.add_argument("--until", type=when, help="UTC date or ISO time (exclusive)")
    p.add_argument("--min-duration", type=float)
    p.add_argument("--max-duration", type=float)
    hold = p.add_mutually_exclusive_group()
    hold.add_argument("--held", action="store_const", const=True, dest="legal_hold")
    hold.add_argument("--not-held", action="store_const", const=False, dest="legal_hold")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")


def when(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def query_from(args: argparse.Namespace) -> Query:
    return Query(caller=args.caller, caller_prefix=args.caller_prefix, agent=args.agent,
                 outcome=args.outcome, did=args.did, status=args.status or "",
                 since=args.since, until=args.until, min_duration_s=args.min_duration,
                 max_duration_s=args.max_duration, legal_hold=args.legal_hold,
                 limit=args.limit)


def run(args: argparse.Namespace, settings: ArchiveSettings,
        action: Callable[[Archive, Actor, argparse.Namespace], int] | None = None,
        name: str = "") -> int:
    """Every action but ``serve`` (which the CLI runs under callrec/lifecycle.py), as the login
    user with the admin role; an ArchiveError becomes a message and exit code 1."""
    archive = Archive(settings)
    try:
        return (action or _run)(archive, cli_actor(), args)
    except ArchiveError as exc:
        print(f"callrec {name or 'archive ' + args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        archive.close()


def cli_actor() -> Actor:
    """Who runs the CLI: the login name (``$SUDO_USER`` first), with the archive's admin role
    (the CLI runs with the archive's S3 credentials)."""
    return Actor(os.environ.get("SUDO_USER") or getpass.getuser(), "admin", "cli")


def migrate(args: argparse.Namespace, settings: ArchiveSettings) -> int:
    """Before the Archive opens the catalog (which refuses an old schema)."""
    try:
        print(migrate_catalog(settings.archive, settings.numbering, settings.flags,
                              args.from_sqlite))
    except ArchiveError as exc:
        print(f"callrec archive migrate: {exc}", file=sys.stderr)
        return 1
    return 0


def offline(args: argparse.Namespace) -> int | None:
    """The actions that need no settings (hash-password, token); None for the others."""
    if args.action == "hash-password":
        return _hash_password()
    if args.action == "token":
        return _token(args.name, args.role)
    return None


def _run(archive: Archive, actor: Actor, args: argparse.Namespace) -> int:  # noqa: C901
    action = args.action
    if action in EVIDENCE_ACTIONS:
        return run_evidence(archive, actor, args)
    if action == "sync":
        print(archive.sync(full=args.full, rebuild=args.rebuild).line())
    elif action == "search":
        rows = [r.fields() for r in archive.search(actor, query_from(args))]
        print(dumps(rows) if args.json else table(rows, COLUMNS))
    elif action == "show":
        row, manifest = archive.show(actor, args.call_id)
        if args.json:
            print(dumps({"catalog": row.fields(), "manifest": manifest.model_dump(mode="json")}))
        else:
            print(table([row.fields()], COLUMNS + ("sha256",), width=64))
            print(inert(manifest.model_dump_json(indent=2)))
    elif action == "get":
        return _get(archive, actor, args.call_ids, args.to)
    elif action == "url":
        print(archive.url(actor, args.call_id, args.expires))
    elif action == "outcome":
        archive.set_outcome(actor, args.call_id, args.outcome)
        print(f"{args.call_id}: outcome {args.outcome}")
    elif action in ("hold", "release"):
        archive.hold(actor, args.call_id, action == "hold")
        print(f"{args.call_id}: legal hold {'ON' if action == 'hold' else 'OFF'}")
    elif action == "audit":
        audit = [r.fields() for r in archive.audit_log(actor, args.limit)]
        print(dumps(audit) if args.json else
              table(audit, ("id", "at", "actor", "role", "via", "action", "call_id", "detail"),
                    width=60))
    return 0


def _get(archive: Archive, actor: Actor, call_ids: list[str], directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    sizes = [archive.row(c).size or 0 for c in call_ids]
    total, done = sum(sizes), 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if sys.stderr.isatty():
            filled = 30 * done // max(total, 1)
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done >> 20}/{total >> 20} MiB",
                  end="", file=sys.stderr, flush=True)

    failed = 0
    for call_id in call_ids:
        try:
            path = archive.get(actor, call_id, directory, progress)
            print(f"{path} (SHA-256 verified)")
        except ArchiveError as exc:
            failed += 1
            print(f"callrec archive get: {exc}", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return 1 if failed else 0


def _hash_password() -> int:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        first = sys.stdin.readline().rstrip("\n")
    if len(first) < 12:
        print("use at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(first))
    return 0


def _token(name: str, role: str) -> int:
    token = secrets.token_urlsafe(32)
    print(f"token (give it to the client; it is not stored): {token}")
    print(f'config: [web.tokens.{name}] role = "{role}"  sha256 = "{token_digest(token)}"')
    return 0
