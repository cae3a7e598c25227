"""The shared lifecycle and backoff: a first signal drains within the grace period, a second
exits at once; a backoff's cap holds with jitter."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from callrec.backoff import Backoff
from callrec.lifecycle import Stop, Tasks, serve


def test_backoff_grows_to_its_cap_and_jitter_never_passes_it() -> None:
    plain = Backoff(first=0.1, cap=1.0, jitter=0.0)
    assert [round(plain.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    plain.reset()
    assert plain.next() == 0.1
    jittery = Backoff(first=0.5, cap=2.0, jitter=0.5)
    delays = [jittery.next() for _ in range(200)]
    assert max(delays) <= 2.0 and min(delays[5:]) >= 1.0  # shortened by at most half
    with pytest.raises(ValueError):
        Backoff(first=2.0, cap=1.0)


class Slow:
    """A daemon whose shutdown drains a task that takes ``drain_s``."""

    def __init__(self, drain_s: float) -> None:
        self.drain_s, self.tasks, self.drained = drain_s, Tasks(), False
        self.started = asyncio.Event()

    async def startup(self) -> None:
        self.tasks.spawn(asyncio.sleep(self.drain_s))

    async def run(self, stop: Stop) -> None:
        self.started.set()
        await stop.requested.wait()

    async def shutdown(self, stop: Stop) -> None:
        self.drained = await stop.within_grace(self.tasks.drain())
        await self.tasks.cancel()


@pytest.mark.parametrize(("drain_s", "grace_s", "drained"), [
    (0.2, 5.0, True),  # a first signal drains within the grace period
    (30.0, 0.2, False),  # the grace period ends the drain
])
async def test_a_first_signal_drains_for_the_grace_period(drain_s: float, grace_s: float,
                                                          drained: bool) -> None:
    daemon = Slow(drain_s)
    serving = asyncio.ensure_future(serve(daemon, grace_s))
    await daemon.started.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 2)
    assert daemon.drained is drained


async def test_a_second_signal_exits_now() -> None:
    daemon = Slow(drain_s=30)
    serving = asyncio.ensure_future(serve(daemon, grace_s=60))
    await daemon.started.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.1)
    assert not serving.done()  # draining, within its minute
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(serving, 2)
    assert not daemon.drained
