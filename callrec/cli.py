"""The ``callrec`` command: one subcommand per service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from callrec import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec",
        description="Honest call-recording notice, recording and S3 archive for Asterisk.",
    )
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in (("ari", "run the call flow (Stasis app)"),
                       ("check", "check ARI, AMI, modules, prompts and spool; exit 1 on problems")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", type=Path, help="TOML file (CALLREC_* variables win)")
    return parser


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
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
    from ari_app.service import Service

    asyncio.run(Service(settings).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
