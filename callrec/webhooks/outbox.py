"""The durable outbox: an event is a file per endpoint until that endpoint has taken it.

    <outbox>/<endpoint>/<emitted ns, 20 digits>-<webhook id>.json   pending, oldest first
    <outbox>/<endpoint>/dead/…                                      not taken within max_age_h
    <outbox>/.sender.lock                                           held by the host's sender

Each file is written atomically and fsync'd (callrec/durable.py) before ``emit`` returns, so an
event emitted is never lost to a crash, a kill -9 or a receiver down for days (until
``max_age_h``). The id is derived from what the event is about (call, type, a discriminator
such as the manifest's SHA-256), so the same event emitted twice, by a retry or a restart, keeps
one id: a pending copy is not written again, and a receiver recognises a redelivered one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callrec.durable import fsync_dir, write_atomic
from callrec.webhooks import WebhookError
from callrec.webhooks.settings import EventType, WebhookSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    id: str
    type: EventType
    call_id: str
    body: bytes  # exactly what is signed and POSTed

    @classmethod
    def make(cls, type: EventType, call_id: str, data: dict[str, Any], key: str = "",
             at: datetime | None = None) -> Event:
        """The Standard Webhooks payload ``{"type", "timestamp", "data"}``; ``key`` tells
        two events of one type about one call apart (the manifest version, the flag)."""
        digest = hashlib.sha256(f"{call_id}\n{type.value}\n{key}".encode()).hexdigest()
        body = json.dumps({"type": type.value, "timestamp": _iso(at or datetime.now(UTC)),
                           "data": {"call_id": call_id, **data}},
                          ensure_ascii=False, separators=(",", ":"), default=_iso)
        return cls(f"msg_{digest[:32]}", type, call_id, body.encode())


def _iso(value: object) -> str:
    """Times as RFC 3339 in UTC (``2026-12-08T00:44:00.123456Z``), as the spec's examples."""
    if not isinstance(value, datetime):
        raise TypeError(f"{type(value).__name__} is not JSON")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Pending:
    path: Path
    event: Event
    emitted_ns: int

    def age_s(self, now_ns: int) -> float:
        return max(0.0, (now_ns - self.emitted_ns) / 1e9)


class Outbox:
    def __init__(self, settings: WebhookSettings) -> None:
        self.root, self.endpoints = settings.outbox, settings.endpoints

    def emit(self, event: Event, emitted_ns: int | None = None) -> list[str]:
        """Write ``event`` for every endpoint that takes its type; the names written for.
        ``emitted_ns`` orders it among its call's events (take it when the event happens if
        the write comes later, e.g. from a thread)."""
        ns = emitted_ns if emitted_ns is not None else time.time_ns()
        envelope = json.dumps({"id": event.id, "type": event.type.value,
                               "call_id": event.call_id,
                               "body": event.body.decode()}, ensure_ascii=False).encode()
        written = []
        for name, endpoint in self.endpoints.items():
            if event.type not in endpoint.events:
                continue
            directory = self.directory(name)
            if any(directory.glob(f"*-{event.id}.json")):
                continue  # emitted before and still pending: one copy, one id
            write_atomic(directory, f"{ns:020d}-{event.id}.json", envelope)
            written.append(name)
        return written

    def directory(self, name: str) -> Path:
        directory = self.root / name
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return directory

    def pending(self, name: str) -> list[str]:
        """The names of an endpoint's pending files, oldest first."""
        try:
            return sorted(n for n in os.listdir(self.root / name) if n.endswith(".json"))
        except FileNotFoundError:
            return []

    def load(self, name: str, file: str) -> Pending:
        path = self.root / name / file
        try:
            raw = json.loads(path.read_bytes())
            event = Event(raw["id"], EventType(raw["type"]), raw["call_id"],
                          raw["body"].encode())
            return Pending(path, event, int(file.split("-", 1)[0]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WebhookError(f"outbox file {path} is not an event: {exc}") from exc

    def done(self, path: Path) -> None:
        """Taken by the endpoint: gone, durably (a restart must not send it again)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fsync_dir(path.parent)

    def bury(self, path: Path) -> Path:
        """Given up on (too old, or not an event): kept aside for an operator, not sent."""
        dead = path.parent / "dead"
        dead.mkdir(mode=0o700, exist_ok=True)
        target = dead / path.name
        os.replace(path, target)
        fsync_dir(path.parent)
        return target

    def dead(self, name: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root / name / "dead") if n.endswith(".json"))
        except FileNotFoundError:
            return []

    def requeue_dead(self, name: str) -> int:
        """Put an endpoint's dead events back (an operator's decision, once the receiver
        works): each keeps its id and is ordered as emitted now, so it does not expire again
        at once; the count moved."""
        moved = 0
        for file in self.dead(name):
            event_id = file.split("-", 1)[1]
            os.replace(self.root / name / "dead" / file,
                       self.directory(name) / f"{time.time_ns():020d}-{event_id}")
            moved += 1
        if moved:
            fsync_dir(self.root / name)
            fsync_dir(self.root / name / "dead")
        return moved

    def try_lock(self) -> int | None:
        """The host's sender lock (flock: released by the kernel when its holder dies, even by
        kill -9), or None while another process holds it."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / ".sender.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd
