"""A PostgreSQL server for the catalog's tests and the two-server bench: Debian's own binaries
(``make deps`` installs them, with no cluster of Debian's own), one data dir per run, on a
loopback port, run as the ``postgres`` user (the server refuses root), SCRAM passwords made per
run. ``database()`` gives each test a database of its own."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg

from testbench import BenchError
from testbench.procs import Child, wait_until

USER = "postgres"  # the account Debian's package makes; the server runs as it


def binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise BenchError("PostgreSQL not found: apt-get install postgresql (make deps does)")
    return Path(found[-1]).parent


class Postgres:
    def __init__(self, work: Path, port: int) -> None:
        self.work, self.port = work, port
        self.password = secrets.token_urlsafe(24)
        self.child: Child | None = None

    def start(self) -> Child:
        import pwd

        account = pwd.getpwnam(USER)
        shutil.rmtree(self.work, ignore_errors=True)
        data, sockets = self.work / "data", self.work / "run"
        for directory in (self.work, sockets):
            directory.mkdir(parents=True, mode=0o700)
            os.chown(directory, account.pw_uid, account.pw_gid)
        pwfile = self.work / "pw"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, account.pw_uid, account.pw_gid)
        pwfile.chmod(0o600)
        done = subprocess.run(
            [str(binaries() / "initdb"), "-D", str(data), "-U", "callrec", "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8"],
            user=USER, capture_output=True, text=True, check=False, cwd=self.work)
        pwfile.unlink()
        if done.returncode:
            raise BenchError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        self.child = Child("postgres", [
            str(binaries() / "postgres"), "-D", str(data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
            "-c", "fsync=off", "-c", "max_connections=200"],
            self.work / "postgres.log", marker=str(data), cwd=self.work, user=USER)
        wait_until(self._accepts, "postgres", 30, self.child)
        return self.child

    def dsn(self, dbname: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={self.port} user=callrec password={self.password} "
                f"dbname={dbname} connect_timeout=5")

    def _accepts(self) -> bool:
        try:
            psycopg.connect(self.dsn(), autocommit=True).close()
        except psycopg.OperationalError:
            return False
        return True

    def database(self) -> str:
        """A new empty database; its connection string."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None
        shutil.rmtree(self.work, ignore_errors=True)
