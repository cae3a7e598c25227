"""``callrec setup``: the flags, and the run: probe, refuse or plan, show or apply, reload,
start, check. ``--undo`` reverses it from the state file."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

from callrec_cli.setup import SetupError
from callrec_cli.setup.changes import Applier, State, diff, undo
from callrec_cli.setup.pbx import Asterisk, Pbx, probe, refusals
from callrec_cli.setup.plan import CONF, Answers, Planner, parse_route, read_env
from callrec_cli.setup.tree import Tree

log = logging.getLogger(__name__)

UNITS = {"pbx": "callrec-ari", "s3": "callrec-upload", "archive": "callrec-archive"}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "plug callrec into this host's Asterisk (idempotent; --dry-run, --undo)"
    p = sub.add_parser("setup", help=text, description=text)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="print the change as a diff")
    what.add_argument("--undo", action="store_true", help="remove exactly what setup added")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--s3-only", action="store_true", help="the uploader only (no Asterisk)")
    only.add_argument("--archive-only", action="store_true", help="the archive web UI only")
    p.add_argument("--route", action="append", default=[], metavar="DID=CONTEXT[,EXTEN]",
                   help="where a DID's calls go after the notice (repeatable)")
    p.add_argument("--queue", action="append", default=[], metavar="NAME",
                   help="a queue whose calls must be recorded (policy force; repeatable)")
    p.add_argument("--language", default="ja", help="the notice's default language (ja, en)")
    p.add_argument("--policy", default="optional", choices=("optional", "force", "never"))
    p.add_argument("--s3-endpoint", default="", help="S3 endpoint URL (empty: AWS)")
    p.add_argument("--s3-bucket", default="callrec")
    p.add_argument("--s3-region", default="us-east-1")
    p.add_argument("--http-port", type=int, default=8088,
                   help="if Asterisk's HTTP server is off: the loopback port to turn it on at")
    p.add_argument("--ami-port", type=int, default=5038, help="likewise for AMI")
    p.add_argument("--asterisk", default="asterisk", metavar="CMD",
                   help="how to run Asterisk's CLI (e.g. 'docker exec pbx asterisk')")
    p.add_argument("--asterisk-conf", default="/etc/asterisk/asterisk.conf",
                   help="read when Asterisk is not running")
    p.add_argument("--asterisk-user", default="asterisk")
    p.add_argument("--root", type=Path, default=Path("/"),
                   help="the host's file tree (a chroot or image being prepared)")
    p.add_argument("--no-start", action="store_true", help="do not enable and start the units")
    p.add_argument("--no-check", action="store_true", help="do not run callrec check")


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise SetupError("callrec setup writes Asterisk's and systemd's files: run it as root")
    tree = Tree(args.root)
    asterisk = Asterisk(shlex.split(args.asterisk))
    if args.undo:
        return _undo(tree, asterisk, args)
    answers = _answers(args)
    pbx = probe(asterisk, tree, args.asterisk_conf) if "pbx" in answers.components else \
        Pbx(False, "", "/etc/asterisk", "/var/spool/asterisk", "/usr/share/asterisk")
    problems = refusals(pbx) + _conflicts(tree, pbx, answers)
    if problems:
        raise SetupError("cannot set callrec up:\n  " + "\n  ".join(problems))
    planner = Planner(tree, pbx, answers)
    changes = planner.changes()
    if args.dry_run:
        user = "" if tree.user("callrec") else "# useradd --system callrec (group asterisk)\n"
        sys.stdout.write(user + (diff(tree, changes, planner.secrets) or "# nothing to change\n"))
        return 0
    state = State(tree)
    applier = Applier(tree, state)
    applier.begin()  # the state dir first: the user it creates is recorded there
    _ensure_user(tree, state, answers)
    done = applier.apply(changes)
    for line in done:
        print(line)
    if not done:
        print("callrec setup: nothing to change")
    return _activate(args, tree, asterisk, pbx, answers, bool(done))


def _answers(args: argparse.Namespace) -> Answers:
    components = ("s3",) if args.s3_only else ("archive",) if args.archive_only else \
        ("pbx", "s3", "archive")
    return Answers(components=components, routes=dict(parse_route(r) for r in args.route),
                   queues=list(args.queue), language=args.language, policy=args.policy,
                   s3_endpoint=args.s3_endpoint, s3_bucket=args.s3_bucket,
                   s3_region=args.s3_region, http_port=args.http_port, ami_port=args.ami_port,
                   asterisk_user=args.asterisk_user,
                   bin=str(Path(sys.executable).parent / "callrec"))


def _conflicts(tree: Tree, pbx: Pbx, answers: Answers) -> list[str]:
    """A ``[callrec]`` ARI or AMI user of the admin's own: setup will not take it over."""
    if "pbx" not in answers.components:
        return []
    found = []
    for stem in ("ari", "manager"):
        for path in tree.host(pbx.etc).glob(f"{stem}*.conf"):
            if b"\n[callrec]" in b"\n" + path.read_bytes():
                found.append(f"{path.name} already has a [callrec] user (not setup's): rename "
                             "it or remove it")
    return found


def _ensure_user(tree: Tree, state: State, answers: Answers) -> None:
    """The units' ``User=callrec``, in Asterisk's group (the spool is shared)."""
    if tree.user(answers.service_user) is not None:
        return
    root = [] if tree.root == Path("/") else ["--root", str(tree.root)]
    state.entries[f"user:{answers.service_user}"] = {"path": f"user:{answers.service_user}",
                                                     "kind": "user"}
    state.save()
    _run(["useradd", *root, "--system", "--no-create-home", "--home-dir", "/var/lib/callrec",
          "--shell", "/usr/sbin/nologin", "--gid", answers.asterisk_user,
          answers.service_user])
    print(f"created the system user {answers.service_user}")


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise SetupError(f"{argv[0]} failed: {(result.stderr or result.stdout).strip()[:300]}")


def _systemd(tree: Tree, args: argparse.Namespace) -> bool:
    return tree.root == Path("/") and Path("/run/systemd/system").is_dir() and not args.no_start


def _activate(args: argparse.Namespace, tree: Tree, asterisk: Asterisk, pbx: Pbx,
              answers: Answers, changed: bool) -> int:
    if changed and pbx.running:
        # ARI's sound index and every module's configuration are read at load (res_ari's
        # sounds resource asks the media index, built by main/sounds.c at reload).
        asterisk.rx("core reload")
        print("reloaded Asterisk's modules (core reload)")
    units = [f"{UNITS[c]}.service" for c in answers.components]
    if _systemd(tree, args):
        _run(["systemctl", "daemon-reload"])
        _run(["systemctl", "enable", "--now", *units])
        print("enabled and started " + ", ".join(units))
        if "pbx" in answers.components and changed:
            print("restart Asterisk when calls allow (systemctl restart asterisk) for its UMask")
    else:
        print("systemd not used here: start " + ", ".join(units) + " yourself")
    if args.no_check or not pbx.running or "pbx" not in answers.components:
        return 0
    env = dict(os.environ)
    env.update(read_env(tree.read(f"{CONF}/secrets.env")))
    config = tree.host(f"{CONF}/callrec.toml")
    return subprocess.run([sys.executable, "-m", "callrec_cli", "check", "--config",
                           str(config)], env=env, check=False).returncode


def _undo(tree: Tree, asterisk: Asterisk, args: argparse.Namespace) -> int:
    state = State(tree)
    if not state.entries:
        print("callrec setup: nothing to undo (no state file)")
        return 0
    users = [str(e["path"]).removeprefix("user:") for e in state.entries.values()
             if e["kind"] == "user"]
    if _systemd(tree, args):
        subprocess.run(["systemctl", "disable", "--now", *[f"{u}.service" for u in
                                                             UNITS.values()]], check=False)
    done, kept = undo(tree, state)
    for line in done:
        print(line)
    for user in users:
        root = [] if tree.root == Path("/") else ["--root", str(tree.root)]
        _run(["userdel", *root, user])
        print(f"removed the system user {user}")
    for line in kept:
        print(f"kept {line}", file=sys.stderr)
    try:
        asterisk.rx("core reload")
    except SetupError as exc:
        log.info("Asterisk not reloaded: %s", exc)
    return 1 if kept else 0
