"""The ``callrec`` command. Each service adds its subcommand here as it lands."""

from __future__ import annotations

import argparse
import sys

from callrec import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec",
        description="Honest call-recording notice, recording and S3 archive for Asterisk.",
    )
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
