"""The ``callrec`` command: one subcommand per service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from callrec import __version__

if TYPE_CHECKING:
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec",
        description="Honest call-recording notice, recording and S3 archive for Asterisk.",
    )
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (("ari", "run the call flow (Stasis app and FastAGI door)"),
                       ("check", "check ARI, AMI, modules, prompts and spool; exit 1 on problems")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", type=Path, help="TOML file (CALLREC_* variables win)")
    upload = sub.add_parser("upload", help="ship finished calls from the spool to S3",
                            description="ship finished calls from the spool to S3")
    upload.add_argument("--drain", action="store_true",
                        help="ship the backlog once and exit (1 if anything is left)")
    outcome = sub.add_parser("outcome", help="change a call's outcome after wrap-up")
    outcome_sub = outcome.add_subparsers(dest="action", required=True)
    set_cmd = outcome_sub.add_parser("set", help="set CALL_ID's outcome (and its S3 tags)")
    set_cmd.add_argument("call_id")
    set_cmd.add_argument("outcome", help="[a-z0-9_]{1,32}, e.g. complaint, harassment")
    set_cmd.add_argument("--by", default="", help="who changed it (kept in the manifest)")
    from archive.cli import add_parser

    add_parser(sub)
    return parser


def _outcome(call_id: str, outcome: str, by: str) -> int:
    from uploader.config import UploaderSettings
    from uploader.outcome import OutcomeError, set_outcome
    from uploader.store import Store, StoreError

    settings = UploaderSettings()
    try:
        where, _ = set_outcome(settings, Store(settings.s3), call_id, outcome, by)
    except (OutcomeError, StoreError) as exc:
        print(f"callrec outcome: {exc}", file=sys.stderr)
        return 1
    done = "archived objects updated" if where == "archive" else \
        "manifest in the spool updated; the uploader ships it"
    print(f"{call_id}: outcome {outcome} ({done})")
    return 0


def _upload(drain: bool) -> int:
    from uploader.config import UploaderSettings
    from uploader.service import Uploader
    from uploader.store import StoreError

    try:
        settings = UploaderSettings()
    except ValidationError as exc:
        print(f"callrec: bad configuration: {exc}", file=sys.stderr)
        return 2
    _setup_logging()
    uploader = Uploader(settings)
    try:
        uploader.store.check_bucket()
    except StoreError as exc:
        if exc.permanent or drain:
            print(f"callrec upload: {exc}; nothing was uploaded or deleted", file=sys.stderr)
            uploader.close()
            return 1
        # S3 unreachable for now: the daemon keeps the backlog and retries with backoff.
        logging.getLogger("callrec.cli").warning("%s; retrying in the background", exc)
    if not drain:
        from uploader.daemon import Daemon

        asyncio.run(Daemon(uploader).serve())
        return 0
    summary = asyncio.run(uploader.drain(_progress_bar() if sys.stderr.isatty() else
                                         lambda done, total: None))
    uploader.close()
    print(f"shipped {len(summary.shipped)}, failed {len(summary.failed)}, "
          f"quarantined {len(summary.quarantined)}")
    for call_id, reason in {**summary.failed, **summary.quarantined}.items():
        print(f"  {call_id}: {reason}")
    return 0 if not summary.failed and not summary.quarantined else 1


def _progress_bar() -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        filled = 30 * done // max(total, 1)
        end = "\n" if done >= total else ""
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} calls", end=end,
              file=sys.stderr, flush=True)
    return show


def _setup_logging() -> None:
    """INFO by default: a line when a call enters and one with its manifest (per-step lines
    are DEBUG). ``CALLREC_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR) changes it."""
    name = os.environ.get("CALLREC_LOG_LEVEL", "INFO").upper()
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        print(f"callrec: CALLREC_LOG_LEVEL {name!r} is not a level; using INFO", file=sys.stderr)
        level = logging.INFO
    # The format uses none of these: skip gathering them for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "upload":
        return _upload(args.drain)
    if args.command == "outcome":
        return _outcome(args.call_id, args.outcome, args.by)
    if args.command == "archive":
        from archive.cli import run

        try:
            return run(args)
        except ValidationError as exc:
            print(f"callrec: bad configuration: {exc}", file=sys.stderr)
            return 2
    from ari_app.config import load_settings

    try:
        settings = load_settings(args.config)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"callrec: bad configuration: {exc}", file=sys.stderr)
        return 2
    _setup_logging()
    if args.command == "check":
        from ari_app.check import report

        text, ok = report(settings)
        print(text)
        return 0 if ok else 1
    from ari_app import AriAppError
    from ari_app.service import Service
    from ari_app.wiring import build
    from callrec.lifecycle import serve

    try:
        asyncio.run(serve(Service(build(settings)), settings.shutdown_grace_s))
    except AriAppError as exc:  # cannot start (spool journal locked, inotify unavailable...)
        print(f"callrec: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
