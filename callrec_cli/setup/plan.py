"""Every file setup writes, from what the PBX is (``pbx.Pbx``) and the admin's answers (flags).

The same answers give the same bytes, so a second run changes nothing; secrets are kept from
the first run (read back from the files setup wrote), never printed."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from callrec_cli.setup import SetupError
from callrec_cli.setup.assets import share, walk
from callrec_cli.setup.changes import Change, Dir, File, Line
from callrec_cli.setup.pbx import Pbx
from callrec_cli.setup.tree import Tree

CONF = "/etc/callrec"
UNITS = "/etc/systemd/system"
SHIPPED_BIN = "/opt/callrec/.venv/bin/callrec"
SHIPPED_SPOOL = "/var/spool/asterisk/callrec"
TAG = "; added by callrec setup (callrec setup --undo removes it)"


@dataclass
class Answers:
    """The admin's answers, given as flags (``callrec setup --help``)."""

    components: tuple[str, ...] = ("pbx", "s3", "archive")
    routes: dict[str, tuple[str, str]] = field(default_factory=dict)  # DID -> (context, exten)
    queues: list[str] = field(default_factory=list)
    language: str = "ja"
    policy: str = "optional"
    s3_endpoint: str = ""
    s3_bucket: str = "callrec"
    s3_region: str = "us-east-1"
    http_port: int = 8088
    ami_port: int = 5038
    asterisk_user: str = "asterisk"
    service_user: str = "callrec"
    bin: str = SHIPPED_BIN


def read_env(data: bytes | None) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile setup wrote (comments skipped)."""
    lines = (data or b"").decode(errors="replace").splitlines()
    return dict(x.split("=", 1) for x in lines if "=" in x and not x.startswith("#"))


def _env_file(values: dict[str, str]) -> bytes:
    head = "# Written by callrec setup: the secrets of callrec's services (mode 0600).\n"
    return (head + "".join(f"{k}={v}\n" for k, v in values.items() if v)).encode()


class Planner:
    def __init__(self, tree: Tree, pbx: Pbx, answers: Answers) -> None:
        self.tree, self.pbx, self.a = tree, pbx, answers
        old = read_env(tree.read(f"{CONF}/secrets.env"))
        self.ari_password = old.get("CALLREC_ARI__PASSWORD") or secrets.token_urlsafe(24)
        self.ami_secret = old.get("CALLREC_AMI__SECRET") or secrets.token_urlsafe(24)
        s3_old = read_env(tree.read(f"{CONF}/upload.env"))
        self.s3_keys = {k: os.environ.get(k) or s3_old.get(k, "")
                        for k in ("CALLREC_S3__ACCESS_KEY", "CALLREC_S3__SECRET_KEY")}

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.ari_password, self.ami_secret, *self.s3_keys.values()) if s]

    @property
    def spool(self) -> str:
        return f"{self.pbx.spool.rstrip('/')}/callrec"

    def changes(self) -> list[Change]:
        out: list[Change] = []
        if "pbx" in self.a.components:
            out += self.asterisk_files()
        out += self.callrec_files()
        return out

    # ---- Asterisk's side -------------------------------------------------------------------

    def asterisk_files(self) -> list[Change]:
        etc, grp = self.pbx.etc.rstrip("/"), self.a.asterisk_user
        out: list[Change] = [Dir(f"{etc}/callrec", 0o750, "root", grp)]
        for name, data in walk(share("dialplan")):
            out.append(File(f"{etc}/callrec/{name}", data, 0o640, "root", grp))
        out.append(Dir(f"{etc}/callrec/setup", 0o750, "root", grp))
        for target, text in self.includes().items():
            path = f"{etc}/callrec/setup/{target}"
            out.append(File(path, text.encode(), 0o640, "root", grp))
            out.append(self.hook(target.removesuffix(".conf"), f"callrec/setup/{target}"))
        out.append(self.hook("extensions", "callrec/callrec.conf"))
        out.append(self.hook("features", "callrec/features/agent-keys.conf"))
        for name, data in walk(share("sounds")):
            out.append(File(f"{self.pbx.data.rstrip('/')}/sounds/{name}", data))
        out.append(Dir(self.spool, 0o2770, grp, grp))
        # Asterisk's files group-writable, so callrec may finish the header of a recording
        # Asterisk died writing (docs/admin.md, "Asterisk crashes").
        out.append(File(f"{UNITS}/asterisk.service.d/callrec-umask.conf",
                        b"# Written by callrec setup.\n[Service]\nUMask=0007\n"))
        return out

    def includes(self) -> dict[str, str]:
        """callrec's part of each Asterisk file, appended after the admin's own lines (the last
        value of a key wins: main/config.c ast_variable_retrieve, main/http.c's loop)."""
        out = {"ari.conf": f"[callrec]\ntype = user\nread_only = no\npassword = "
                           f"{self.ari_password}\npassword_format = plain\n",
               "manager.conf": self._manager(),
               "cdr.conf": f"{self._open('cdr', 'csv')}\nloguniqueid = yes\n"
                           "loguserfield = yes\nnewcdrcolumns = yes\n"}
        if not self.pbx.http.enabled:
            out["http.conf"] = (f"{self._open('http', 'general')}\nenabled = yes\n"
                                f"bindaddr = 127.0.0.1\nbindport = {self.a.http_port}\n")
        return {name: f"; callrec setup: callrec's part of {name}.\n{text}"
                for name, text in out.items()}

    def _manager(self) -> str:
        general = "" if self.pbx.ami.enabled else (
            f"{self._open('manager', 'general')}\nenabled = yes\nbindaddr = 127.0.0.1\n"
            f"port = {self.a.ami_port}\n\n")
        # The classes callrec's actions and events need (docs/admin.md), loopback only.
        return (f"{general}[callrec]\nsecret = {self.ami_secret}\ndeny = 0.0.0.0/0.0.0.0\n"
                "permit = 127.0.0.1/255.255.255.255\nread = system,call,agent,dialplan\n"
                "write = system,call,agent,reporting\n")

    def _open(self, stem: str, category: str) -> str:
        """``[category](+)`` adds to the admin's category when it is open before setup's
        include; Asterisk refuses it when there is none yet (main/config.c: "Category addition
        requested, but category ... does not exist")."""
        before = self._before_hook(stem)
        exists = re.search(rf"^\s*\[{category}\]", before, flags=re.MULTILINE)
        return f"[{category}](+)" if exists else f"[{category}]"

    def _custom(self, stem: str) -> tuple[str, str]:
        """(the admin's file, the last ``stem*_custom.conf`` it includes, or "")."""
        text = (self.tree.read(f"{self.pbx.etc}/{stem}.conf") or b"").decode(errors="replace")
        custom = re.findall(rf'^\s*#(?:try)?include\s+"?({re.escape(stem)}\w*_custom\.conf)"?',
                            text, flags=re.MULTILINE)
        return text, custom[-1] if custom else ""

    def _before_hook(self, stem: str) -> str:
        text, custom = self._custom(stem)
        return text[:text.rindex(custom)] if custom else text

    def hook(self, stem: str, include: str) -> Line:
        """The include line, in the admin's ``stem.conf`` or in the last ``stem*_custom.conf``
        it includes (FreePBX regenerates its own files and keeps those)."""
        etc = self.pbx.etc.rstrip("/")
        target = self._custom(stem)[1] or f"{stem}.conf"
        return Line(f"{etc}/{target}", f'#tryinclude "{include}" {TAG}', 0o640, "root",
                    self.a.asterisk_user)

    # ---- callrec's side --------------------------------------------------------------------

    def callrec_files(self) -> list[Change]:
        out: list[Change] = [Dir(CONF), File(f"{CONF}/callrec.toml", self.config().encode())]
        if "pbx" in self.a.components:
            out.append(File(f"{CONF}/secrets.env", _env_file({
                "CALLREC_ARI__PASSWORD": self.ari_password,
                "CALLREC_AMI__SECRET": self.ami_secret}), 0o600))
        if "s3" in self.a.components or "archive" in self.a.components:
            for name in ("upload.env", "archive.env"):
                out.append(File(f"{CONF}/{name}", _env_file(self.s3_keys), 0o600))
        units = {"pbx": ["callrec-ari"], "s3": ["callrec-upload"], "archive": ["callrec-archive"]}
        for component in self.a.components:
            for unit in units[component]:
                out.append(File(f"{UNITS}/{unit}.service", self.unit(unit)))
        return out

    def unit(self, name: str) -> bytes:
        shipped = dict(walk(share("deploy")))[f"{name}.service"].decode()
        text = shipped.replace(SHIPPED_BIN, self.a.bin).replace(SHIPPED_SPOOL, self.spool)
        text = text.replace("Group=asterisk", f"Group={self.a.asterisk_user}")
        return f"# Written by callrec setup from the shipped {name}.service.\n{text}".encode()

    def config(self) -> str:
        a = self.a
        http = self.pbx.http
        port = http.port if http.enabled and http.port else a.http_port
        ami = self.pbx.ami.port if self.pbx.ami.enabled and self.pbx.ami.port else a.ami_port
        local = str(self.tree.host(self.spool)) if self.tree.root != Path("/") else self.spool
        lines = ["# Written by callrec setup: every setting is explained in callrec.toml.example",
                 "# (in the callrec package, callrec_cli/share/deploy/; docs/admin.md).",
                 f"policy = {json.dumps(a.policy)}", "", "[ari]",
                 f'url = "http://127.0.0.1:{port}"', 'user = "callrec"', "", "[ami]",
                 'host = "127.0.0.1"', f"port = {ami}", 'user = "callrec"', "", "[spool]",
                 f"asterisk_dir = {json.dumps(self.spool)}", f"local_dir = {json.dumps(local)}",
                 "", "[notice]", f"default_language = {json.dumps(a.language)}", "", "[s3]",
                 f"endpoint = {json.dumps(a.s3_endpoint)}", f"bucket = {json.dumps(a.s3_bucket)}",
                 f"region = {json.dumps(a.s3_region)}", "", "[upload]",
                 f"spool = {json.dumps(local)}", "", "[archive]", f"spool = {json.dumps(local)}",
                 "", "[reconcile]", f"cdr = {json.dumps(self._cdr())}"]
        for did, (context, exten) in sorted(a.routes.items()):
            lines += ["", f"[routes.{json.dumps(did)}]", f"context = {json.dumps(context)}",
                      f"extension = {json.dumps(exten)}"]
        for queue in a.queues:
            lines += ["", f"[queues.{json.dumps(queue)}]", 'policy = "force"']
        return "\n".join(lines) + "\n"

    def _cdr(self) -> str:
        log_dir = "/var/log/asterisk"
        conf = (self.tree.read(f"{self.pbx.etc}/asterisk.conf") or b"").decode(errors="replace")
        match = re.search(r"^\s*astlogdir\s*=>?\s*(\S+)", conf, flags=re.MULTILINE)
        path = f"{match.group(1) if match else log_dir}/cdr-csv/Master.csv"
        return str(self.tree.host(path)) if self.tree.root != Path("/") else path


def parse_route(text: str) -> tuple[str, tuple[str, str]]:
    """``DID=context[,extension]`` (``--route``)."""
    did, _, where = text.partition("=")
    context, _, exten = where.partition(",")
    if not re.fullmatch(r"[0-9+*#A-Za-z]{1,32}", did) or not re.fullmatch(r"[\w-]{1,79}",
                                                                           context):
        raise SetupError(f"--route {text!r}: expected DID=context[,extension]")
    return did, (context, exten or "s")
