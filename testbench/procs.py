"""Start, watch and stop the bench's child processes, by PID only.

Every server the bench starts is recorded in a small JSON pid file holding the PID, the process
start time (from /proc) and a marker from its command line, so that ``sandbox-down`` never signals a
process it did not start, even if the PID was reused.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbench import BenchError

log = logging.getLogger(__name__)


def _start_ticks(pid: int) -> int | None:
    """Process start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    marker: str

    def is_ours(self) -> bool:
        """True while the recorded process still runs and is the one we started."""
        if _start_ticks(self.pid) != self.start_ticks:
            return False
        for _ in range(50):
            try:
                cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                return False
            # Empty while the child is inside execve(): Popen returns once the close-on-exec
            # pipe closes, which the kernel does before the new program's arguments are mapped.
            if cmdline:
                return self.marker.encode() in cmdline
            time.sleep(0.02)
        return False

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> PidRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["start_ticks"]), str(data["marker"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


class Child:
    """A server process of the bench, started in its own session, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        marker: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            # Where this process's lines start: a service's log is shared by every run of it
            # in a bench session, and an earlier run's "ready" line must not count for this one.
            self.log_start = out.seek(0, os.SEEK_END)
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                user=user,
                group=user and _group_of(user),
                extra_groups=[] if user else None,
            )
        ticks = _start_ticks(self.proc.pid)
        self.record = PidRecord(self.proc.pid, ticks or 0, marker)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def own_log(self) -> str:
        """What this process has written to its log so far (not earlier runs' lines)."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(self.log_start)
                return log_file.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.own_log().splitlines()[-lines:]) or "(nothing logged)"

    def fail_if_dead(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; reaps the child."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing", self.name,
                            self.pid, timeout)
                self.proc.kill()
                self.proc.wait()


def stop_recorded(path: Path, name: str, timeout: float = 15.0) -> bool:
    """Stop the process recorded in pid file ``path`` if it is still ours; remove the file.

    Returns True if a process was signalled.
    """
    record = PidRecord.load(path)
    signalled = False
    if record is not None and record.is_ours():
        os.kill(record.pid, signal.SIGTERM)
        signalled = True
        deadline = time.monotonic() + timeout
        while record.is_ours() and time.monotonic() < deadline:
            time.sleep(0.1)
        if record.is_ours():
            log.warning("%s (pid %d) ignored SIGTERM: killing", name, record.pid)
            os.kill(record.pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return signalled


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], object], what: str, timeout: float, child: Child | None = None
) -> None:
    """Poll ``check()`` every 50 ms until it returns true; raise BenchError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if child is not None:
            child.fail_if_dead()
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
        time.sleep(0.05)
    detail = f" (last error: {last_error})" if last_error else ""
    tail = f"\nlast lines of its log:\n{child.log_tail()}" if child else ""
    raise BenchError(f"{what} not ready after {timeout:.0f} s{detail}{tail}")
