"""Webhooks against a real HTTP receiver on loopback (testbench/webhooks.py), which verifies
every request as the spec says: v1 with the standardwebhooks library, v1a with Ed25519."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from callrec.lifecycle import Tasks
from callrec.webhooks.hub import Webhooks
from callrec.webhooks.outbox import Event
from callrec.webhooks.settings import EventType, WebhookSettings
from testbench.webhooks import Receiver


def settings(tmp_path: Path, receiver: Receiver, **extra: object) -> WebhookSettings:
    ep: dict[str, object] = {"url": receiver.url, "secret": receiver.secret,
                             "signing_key": receiver.signing_key}
    ep.update({k: v for k, v in extra.items() if k == "events"})
    top = {k: v for k, v in extra.items() if k != "events"}
    return WebhookSettings.model_validate({
        "outbox": tmp_path / "outbox", "retry_first_s": 0.1, "retry_max_s": 0.3,
        "poll_s": 0.1, "endpoints": {"hooks": ep}, **top})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.down()


class Running:
    def __init__(self, hub: Webhooks, registry: CollectorRegistry) -> None:
        self.hub, self.registry, self.tasks = hub, registry, Tasks()

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def running(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Running]:
    registry = CollectorRegistry()
    run = Running(Webhooks(settings(tmp_path, receiver), registry), registry)
    run.hub.start(run.tasks)
    yield run
    await run.tasks.cancel()
    await run.hub.close()


def event(call: str, n: int, type: EventType = EventType.CALL_ARCHIVED) -> Event:
    return Event.make(type, call, {"n": n}, key=str(n))


async def wait_for(receiver: Receiver, count: int, timeout: float = 10.0) -> None:
    await asyncio.to_thread(receiver.wait, count, timeout)


async def drained(directory: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while list(directory.glob("*.json")):
        assert time.monotonic() < deadline, sorted(directory.glob("*.json"))
        await asyncio.sleep(0.02)


async def test_each_event_arrives_signed_both_ways(running: Running,
                                                   receiver: Receiver) -> None:
    await running.hub.emit_soon(event("call-a", 1))
    await wait_for(receiver, 1)
    [d] = receiver.deliveries
    assert d.type == "call.archived" and d.data == {"call_id": "call-a", "n": 1}
    assert d.signatures == ("v1", "v1a") and d.id.startswith("msg_")
    await drained(running.hub.outbox.root / "hooks")  # gone once the answer is in
    assert running.metric("callrec_webhook_deliveries_total", endpoint="hooks",
                          result="delivered") == 1


async def test_receiver_down_then_up_gets_everything_once_in_order_per_call(
        running: Running, receiver: Receiver) -> None:
    receiver.down()
    for n in range(4):
        for call in ("call-a", "call-b", "call-c"):
            await running.hub.emit_soon(event(call, n))
    await asyncio.sleep(1.0)  # several failed rounds
    assert running.metric("callrec_webhook_deliveries_total", endpoint="hooks",
                          result="failed") >= 3
    assert running.metric("callrec_webhook_pending_events", endpoint="hooks") == 12
    receiver.up()
    await wait_for(receiver, 12)
    await asyncio.sleep(0.5)  # nothing more comes
    assert len(receiver.deliveries) == 12
    assert len({d.id for d in receiver.deliveries}) == 12
    for call in ("call-a", "call-b", "call-c"):
        assert [d.data["n"] for d in receiver.of(call)] == [0, 1, 2, 3]


async def test_an_error_status_is_retried_until_taken(running: Running,
                                                      receiver: Receiver) -> None:
    receiver.status = 503
    await running.hub.emit_soon(event("call-a", 1))
    await asyncio.sleep(0.8)
    assert len(receiver.arrived) >= 2 and len(set(receiver.arrived)) == 1  # one id, retried
    receiver.status = 200
    await wait_for(receiver, 1)
    assert [d.data["n"] for d in receiver.deliveries] == [1]


async def test_the_same_event_emitted_twice_is_one_file(tmp_path: Path,
                                                        receiver: Receiver) -> None:
    receiver.down()
    hub = Webhooks(settings(tmp_path, receiver), CollectorRegistry())
    hub.emit(event("call-a", 1))
    hub.emit(event("call-a", 1))  # a retry after a full disk, a restart re-shipping
    hub.emit(event("call-a", 2))
    assert len(list((tmp_path / "outbox/hooks").glob("*.json"))) == 2


async def test_only_the_endpoints_events_are_written(tmp_path: Path,
                                                     receiver: Receiver) -> None:
    hub = Webhooks(settings(tmp_path, receiver, events=["call.flagged"]), CollectorRegistry())
    hub.emit(event("call-a", 1, EventType.CALL_ARCHIVED))
    hub.emit(event("call-a", 2, EventType.CALL_FLAGGED))
    [file] = (tmp_path / "outbox/hooks").glob("*.json")
    assert json.loads(file.read_bytes())["type"] == "call.flagged"


async def test_an_event_too_old_goes_to_dead(tmp_path: Path, receiver: Receiver) -> None:
    receiver.down()
    registry = CollectorRegistry()
    hub = Webhooks(settings(tmp_path, receiver, max_age_h=1), registry)
    hub.emit(event("call-a", 1), emitted_ns=time.time_ns() - 2 * 3600 * 10**9)
    tasks = Tasks()
    hub.start(tasks)
    try:
        deadline = time.monotonic() + 5
        while not list((tmp_path / "outbox/hooks/dead").glob("*.json")):
            assert time.monotonic() < deadline, "not buried"
            await asyncio.sleep(0.05)
        assert registry.get_sample_value("callrec_webhook_deliveries_total",
                                         {"endpoint": "hooks", "result": "expired"}) == 1
    finally:
        await tasks.cancel()
        await hub.close()


async def test_one_sender_per_outbox(tmp_path: Path, receiver: Receiver) -> None:
    """Two services on one host: one delivers, the other waits for the lock, and takes over
    when the first stops."""
    hubs = [Webhooks(settings(tmp_path, receiver), CollectorRegistry()) for _ in range(2)]
    tasks = [Tasks(), Tasks()]
    for hub, t in zip(hubs, tasks, strict=True):
        hub.start(t)
    await asyncio.sleep(0.3)
    senders = [hub.sender for hub in hubs]
    assert sum(s is not None and s._lock is not None for s in senders) == 1
    first = next(i for i, s in enumerate(senders) if s is not None and s._lock is not None)
    await tasks[first].cancel()
    await hubs[first].close()
    hubs[1 - first].emit(event("call-a", 1))
    await wait_for(receiver, 1, timeout=5)  # the other one took the lock (within 5 polls)
    await tasks[1 - first].cancel()
    await hubs[1 - first].close()


def test_endpoint_settings_refuse_what_cannot_work(tmp_path: Path) -> None:
    base = {"url": "https://hooks.example.jp/x", "secret": "whsec_" + "QUJD" * 8}
    WebhookSettings.model_validate({"endpoints": {"crm": base}})
    bad = [{**base, "url": "ftp://x/"}, {**base, "url": "https://user:pw@x/"},
           {"url": base["url"]}, {**base, "secret": "not-a-secret"},
           {**base, "secret": "whsec_QUJD"}, {**base, "signing_key": "whsk_AAAA"},
           {**base, "events": ["call.nothing"]}]
    for endpoint in bad:
        with pytest.raises(ValidationError):
            WebhookSettings.model_validate({"endpoints": {"crm": endpoint}})
    with pytest.raises(ValidationError):
        WebhookSettings.model_validate({"endpoints": {"../x": base}})
    with pytest.raises(ValidationError) as err:
        WebhookSettings.model_validate({"endpoints": {"crm": {**base, "secret": "x" * 40}}})
    assert "x" * 40 not in str(err.value)  # a secret is never echoed back


def test_outbox_files_are_private(tmp_path: Path, receiver: Receiver) -> None:
    hub = Webhooks(settings(tmp_path, receiver), CollectorRegistry())
    hub.emit(event("call-a", 1))
    assert os.stat(tmp_path / "outbox/hooks").st_mode & 0o077 == 0
