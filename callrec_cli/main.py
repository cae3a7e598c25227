"""The ``callrec`` command: one subcommand per service, and the one place that wires services
together (the uploader's catalog feed, the archive beside it). Every command takes
``--config FILE`` and honours ``CALLREC_LOG_LEVEL``."""

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

from callrec import CallrecError, __version__
from callrec.settings import BadConfigFile, CallrecSettings, S, load

if TYPE_CHECKING:
    from archive.service import Actor, Archive
    from uploader.config import UploaderSettings
    from uploader.service import Uploader

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec",
        description="Honest call-recording notice, recording and S3 archive for Asterisk.",
    )
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (("ari", "run the call flow (Stasis app and FastAGI door)"),
                       ("check", "check ARI, AMI, modules, prompts and spool; exit 1 on problems")):
        sub.add_parser(name, help=text, description=text)
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
    from callrec_cli.evidence import add_parsers
    from callrec_cli.setup.command import add_parser as add_setup
    from callrec_cli.webhooks import add_parsers as add_webhooks

    add_parser(sub)
    add_parsers(sub)
    add_setup(sub)
    add_webhooks(sub)
    for command in _subparsers(sub):
        command.add_argument("--config", type=Path, metavar="FILE",
                             help="TOML file (CALLREC_* environment variables win)")
    return parser


def _subparsers(sub: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:  # type: ignore[type-arg]
    """Every leaf command's parser (``archive sync``, ``outcome set``, ``ari``...)."""
    leaves: list[argparse.ArgumentParser] = []
    for parser in dict.fromkeys(sub.choices.values()):
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += _subparsers(nested[0]) if nested else [parser]
    return leaves


def setup_logging() -> None:
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


class BadConfig(CallrecError):
    pass


def services() -> tuple[type[CallrecSettings], ...]:
    """Every service's settings: one file may hold all their sections, and each daemon checks
    the whole file against all of them (callrec/settings.py)."""
    from archive.config import ArchiveSettings
    from ari_app.config import AriAppSettings
    from uploader.config import UploaderSettings

    return AriAppSettings, UploaderSettings, ArchiveSettings


def settings(cls: type[S], args: argparse.Namespace) -> S:
    try:
        return load(cls, args.config, services())
    except ValidationError as exc:
        raise BadConfig(f"bad configuration: {exc}") from exc
    except BadConfigFile as exc:
        raise BadConfig(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    setup_logging()
    try:
        return _dispatch(args)
    except BadConfig as exc:
        print(f"callrec: {exc}", file=sys.stderr)
        return 2
    except CallrecError as exc:  # cannot start (spool journal locked, inotify unavailable...)
        print(f"callrec: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "upload":
        return _upload(args)
    if args.command == "outcome":
        return _outcome(args)
    if args.command == "archive":
        return _archive(args)
    if args.command == "setup":
        from callrec_cli.setup.command import run

        return run(args)
    from callrec_cli import evidence, webhooks

    if args.command in webhooks.COMMANDS:
        return webhooks.run(args, settings)
    if args.command in evidence.COMMANDS:
        return evidence.run(args, settings)
    return _ari(args)


def _ari(args: argparse.Namespace) -> int:
    from ari_app.config import AriAppSettings

    config = settings(AriAppSettings, args)
    if args.command == "check":
        from ari_app.check import report

        text, ok = report(config)
        print(text)
        return 0 if ok else 1
    from ari_app.service import Service
    from ari_app.wiring import build
    from callrec.lifecycle import run_daemon

    run_daemon(Service(build(config)), config.shutdown_grace_s)
    return 0


def _archive(args: argparse.Namespace) -> int:
    from archive.cli import migrate, offline, run
    from archive.config import ArchiveSettings

    done = offline(args)
    if done is not None:
        return done
    config = settings(ArchiveSettings, args)
    if args.action == "migrate":
        return migrate(args, config)
    if args.action != "serve":
        return run(args, config)
    from archive.service import Archive
    from archive.web.server import WebServer
    from callrec.lifecycle import run_daemon

    run_daemon(WebServer(config, Archive(config)), config.web.shutdown_grace_s)
    return 0


def _outcome(args: argparse.Namespace) -> int:
    """``callrec outcome set`` on a PBX host: the archive's outcome change (audited, the audit
    row shipped to the bucket at once), where the call is now: the uploader's spool on this host
    (``upload.spool``, unless ``archive.spool`` says otherwise), else the archived objects."""
    from archive.cli import run
    from archive.config import ArchiveSettings
    from uploader.config import UploaderSettings

    config = settings(ArchiveSettings, args)
    if config.archive.spool is None:
        config.archive.spool = settings(UploaderSettings, args).upload.spool
    return run(args, config, _set_outcome, "outcome")


def _set_outcome(archive: Archive, actor: Actor, args: argparse.Namespace) -> int:
    where, _ = archive.set_outcome(actor, args.call_id, args.outcome, args.by)
    done = "archived objects updated" if where == "archive" else \
        "manifest in the spool updated; the uploader ships it"
    print(f"{args.call_id}: outcome {args.outcome} ({done})")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from uploader.config import UploaderSettings

    config = settings(UploaderSettings, args)
    archive = _local_archive(config, args)
    try:
        return _ship(args, config, archive)
    finally:
        if archive is not None:
            archive.close()


def _local_archive(config: UploaderSettings, args: argparse.Namespace) -> Archive | None:
    """The archive on this host, told of each call as it is archived (the uploader itself
    knows nothing of the archive): its catalog ``upload.catalog``, flagging calls as the
    archive's own settings say, written through the archive's service like every other write."""
    if config.upload.catalog is None:
        return None
    from archive.catalog.backends import open_catalog
    from archive.config import ArchiveSettings
    from archive.service import Archive

    archived = settings(ArchiveSettings, args)
    return Archive(archived, catalog=open_catalog(archived.archive, config.numbering,
                                                  archived.flags, config.upload.catalog))


def _ship(args: argparse.Namespace, config: UploaderSettings, archive: Archive | None) -> int:
    from callrec.s3.store import StoreError
    from uploader.service import Uploader

    uploader = Uploader(config, feed=archive.catalogue if archive is not None else None)
    try:
        uploader.store.check_bucket()
    except StoreError as exc:
        if exc.permanent or args.drain:
            print(f"callrec upload: {exc}; nothing was uploaded or deleted", file=sys.stderr)
            uploader.close()
            return 1
        # S3 unreachable for now: the daemon keeps the backlog and retries with backoff.
        log.warning("%s; retrying in the background", exc)
    if not args.drain:
        from callrec.lifecycle import run_daemon
        from uploader.daemon import Daemon

        run_daemon(Daemon(uploader), config.upload.shutdown_grace_s)
        return 0
    return _drain(uploader)


def _drain(uploader: Uploader) -> int:
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
