"""The bench signals only processes it started: PID plus start time plus command-line marker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbench.procs import Child, PidRecord, stop_recorded


def test_stop_recorded_stops_our_child(tmp_path: Path) -> None:
    child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)", "marker-1"],
                  tmp_path / "sleeper.log", marker="marker-1")
    try:
        child.record.save(tmp_path / "sleeper.pid")
        proc = Path(f"/proc/{child.pid}")
        seen = (child.record, (proc / "cmdline").read_bytes(), (proc / "stat").read_text())
        assert child.record.is_ours(), seen  # even right after start: the child may be in execve()
        assert stop_recorded(tmp_path / "sleeper.pid", "sleeper", timeout=5), seen
        child.proc.wait(5)
        assert not (tmp_path / "sleeper.pid").exists()
    finally:
        child.stop()


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    """A record whose marker or start time does not match (PID reuse) is left alone."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wrong_marker = PidRecord(other.pid, PidRecord(other.pid, 0, "").start_ticks, "asterisk")
        assert not wrong_marker.is_ours()
        wrong_marker.save(tmp_path / "x.pid")
        assert not stop_recorded(tmp_path / "x.pid", "x")
        assert other.poll() is None
        assert not PidRecord(os.getpid(), 1, "python").is_ours()  # start time differs
    finally:
        other.kill()
        other.wait()


def test_missing_or_garbled_pid_file(tmp_path: Path) -> None:
    assert not stop_recorded(tmp_path / "none.pid", "none")
    (tmp_path / "bad.pid").write_text("{not json")
    assert not stop_recorded(tmp_path / "bad.pid", "bad")
