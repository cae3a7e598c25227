"""The deployment docs/admin.md recommends, on loopback: nginx ending TLS in front of the archive
web UI, with deploy/nginx-callrec-archive.conf itself and a self-signed certificate made here.

nginx runs in the foreground as one process (no master/worker split, no user switch), with
every path of its own under ``work``; only the server block's names, ports and certificate
paths are replaced. ``proxy_bind`` gives the proxy its own loopback address, so the tests can
tell the proxy's address from the browser's.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

from testbench import BenchError
from testbench.procs import Child, wait_until

CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx-callrec-archive.conf"
PROXY_IP = "127.0.0.5"


def self_signed(work: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid one day (browsers are told to accept it)."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def server_block(port: int, upstream: int | list[int], cert: Path, key: Path) -> str:
    """The shipped server block for this bench; several upstreams (archive servers sharing a
    PostgreSQL catalog) become the ``upstream`` group the block's comment shows."""
    text = CONF.read_text()
    group = ""
    if isinstance(upstream, list):
        group = "upstream callrec_archive {\n" + "".join(
            f"    server 127.0.0.1:{p};\n" for p in upstream) + "}\n"
        target = "callrec_archive"
    else:
        target = f"127.0.0.1:{upstream}"
    swaps = [(r"listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
             (r"server_name \S+;", "server_name 127.0.0.1;"),
             (r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};"),
             (r"ssl_certificate_key \S+;", f"ssl_certificate_key {key};"),
             (r"proxy_pass http://127\.0\.0\.1:8480;",
              f"proxy_pass http://{target};\n        proxy_bind {PROXY_IP};")]
    for pattern, replacement in swaps:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise BenchError(f"{CONF}: {pattern!r} not found once")
    return group + text


def start(work: Path, port: int, upstream: int | list[int]) -> Child:
    """nginx on https://127.0.0.1:``port`` in front of http://127.0.0.1:``upstream`` (or
    each of a list of them, in turn)."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise BenchError("nginx not found: apt-get install nginx-light (make deps does)")
    work.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(work)
    (work / "server.conf").write_text(server_block(port, upstream, cert, key))
    temps = "".join(f"    {kind}_temp_path {work / kind};\n"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'} info;\nevents {{}}\n"
        "http {\n    log_format upstreams '$status $request_method $uri $upstream_addr';\n"
        f"    access_log {work / 'access.log'} upstreams;\n{temps}"
        f"    include {work / 'server.conf'};\n}}\n")
    child = Child("nginx-archive", [binary, "-c", str(work / "nginx.conf"), "-p", str(work)],
                  work / "nginx.log", marker=str(work / "nginx.conf"))
    wait_until(lambda: _listening(port), "nginx", 10, child)
    return child


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
