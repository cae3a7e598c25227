"""``callrec webhooks``: keys for an endpoint, the outbox's state, dead events put back.

Reads the ``[webhooks]`` section every emitting service shares (callrec/webhooks/settings.py).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

COMMANDS = ("webhooks",)


def add_parsers(sub: Any) -> None:
    hooks = sub.add_parser("webhooks", help="webhook endpoints: keys, outbox status, dead "
                           "events")
    actions = hooks.add_subparsers(dest="action", required=True)
    keygen = actions.add_parser("keygen", help="a new v1 secret (whsec_) and v1a key pair "
                                "(whsk_/whpk_) for ENDPOINT")
    keygen.add_argument("endpoint", help="its name in [webhooks.endpoints.NAME]")
    keygen.add_argument("--write", type=Path, metavar="ENV_FILE",
                        help="append the secret and private key to this EnvironmentFile "
                        "(mode 0600; e.g. /etc/callrec/secrets.env) instead of printing them")
    actions.add_parser("status", help="per endpoint: events pending, the oldest, dead ones")
    retry = actions.add_parser("retry-dead", help="put ENDPOINT's dead events back in the "
                               "outbox (after the receiver is fixed)")
    retry.add_argument("endpoint")


def run(args: argparse.Namespace, load_settings: Any) -> int:
    if args.action == "keygen":
        return _keygen(args.endpoint, args.write)
    from callrec.webhooks.outbox import Outbox
    from uploader.config import UploaderSettings

    config = load_settings(UploaderSettings, args).webhooks
    outbox = Outbox(config)
    if args.action == "retry-dead":
        if args.endpoint not in config.endpoints:
            print(f"callrec webhooks: no endpoint {args.endpoint!r} in [webhooks.endpoints]")
            return 2
        print(f"{args.endpoint}: {outbox.requeue_dead(args.endpoint)} event(s) put back")
        return 0
    return _status(outbox, list(config.endpoints))


def _status(outbox: Any, configured: list[str]) -> int:
    on_disk = sorted(p.name for p in outbox.root.iterdir() if p.is_dir()) \
        if outbox.root.is_dir() else []
    print(f"outbox {outbox.root}")
    print(f"{'endpoint':<20} {'pending':>8} {'oldest':>10} {'dead':>6}")
    now = time.time_ns()
    for name in dict.fromkeys(configured + on_disk):
        pending = outbox.pending(name)
        oldest = f"{(now - int(pending[0].split('-', 1)[0])) / 1e9:.0f} s" if pending else "-"
        note = "" if name in configured else "  (not configured: kept, not sent)"
        print(f"{name:<20} {len(pending):>8} {oldest:>10} {len(outbox.dead(name)):>6}{note}")
    return 0


def _keygen(endpoint: str, write: Path | None) -> int:
    from callrec.webhooks.signing import new_secret, new_signing_key

    secret = new_secret()
    private, public = new_signing_key()
    prefix = f"CALLREC_WEBHOOKS__ENDPOINTS__{endpoint.upper().replace('-', '_')}__"
    lines = f"{prefix}SECRET={secret}\n{prefix}SIGNING_KEY={private}\n"
    if write is None:
        print(lines, end="")
    else:
        if write.exists() and write.stat().st_mode & 0o077:
            print(f"callrec webhooks: {write} is readable by others (chmod 600 it first); "
                  "nothing written")
            return 1
        fd = os.open(write, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as env_file:
            env_file.write(lines)
        print(f"{write}: {prefix}SECRET and {prefix}SIGNING_KEY appended")
    print("Give the receiver the v1 secret (it verifies with it) or only this public key "
          f"(v1a, Ed25519):\n{public}")
    return 0
