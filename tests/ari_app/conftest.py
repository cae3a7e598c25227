"""Fixtures for the call flow: ``callrec ari`` as a real process against the bench."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callrec.manifest import CallManifest
from testbench.bench import Bench
from testbench.callrec_app import CallrecApp, callrec_env

StartApp = Callable[..., CallrecApp]


@pytest.fixture
def start_callrec(bench: Bench) -> Iterator[StartApp]:
    """Factory: start ``callrec ari`` with optional CALLREC_* overrides; stopped after the test."""
    started: list[CallrecApp] = []
    assert bench.endpoints is not None and bench.asterisk is not None
    ep, asterisk = bench.endpoints, bench.asterisk

    def start(**overrides: str) -> CallrecApp:
        overrides = {"CALLREC_AGI__PORT": str(bench.ports.agi), **overrides}
        app = CallrecApp(ep, callrec_env(ep, asterisk.home, asterisk.recordings, **overrides),
                         bench.log_dir)
        started.append(app)
        app.start()
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def callrec(start_callrec: StartApp) -> CallrecApp:
    return start_callrec()


@pytest.fixture
def manifests(bench: Bench) -> Callable[..., list[CallManifest]]:
    """Manifests whose raw caller number is ``number``, waiting up to ``timeout`` s for
    ``count`` of them (then a moment more, to catch a duplicate)."""
    assert bench.asterisk is not None
    spool: Path = bench.asterisk.recordings

    def find(number: str, count: int = 1, timeout: float = 20.0) -> list[CallManifest]:
        deadline = time.monotonic() + timeout
        found: list[CallManifest] = []
        while time.monotonic() < deadline:
            found = [m for m in map(CallManifest.read, spool.glob("*.json"))
                     if m.caller.number_raw == number]
            if len(found) >= count:
                time.sleep(0.5)
                return [m for m in map(CallManifest.read, spool.glob("*.json"))
                        if m.caller.number_raw == number]
            time.sleep(0.1)
        raise AssertionError(f"{len(found)} manifest(s) for {number!r}, wanted {count}; spool: "
                             + json.dumps(sorted(p.name for p in spool.iterdir())[-10:]))

    return find
