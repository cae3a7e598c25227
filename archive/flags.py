"""Calls flagged for a supervisor's review, never acted on automatically.

The guideline Japanese contact centers work to names the lines: a call of an hour or more, or three
or more calls from the same caller, is a harassment line. callrec flags, a human decides:

- ``agent_warning``, ``ended_by_agent``: an agent used a hot-key on the call (its timeline);
- ``long_call``: the call lasted ``flags.long_call_minutes`` or more (default 60);
- ``repeat_caller``: the ``flags.repeat_calls``-th (default 3rd) or later call from the same
  number within ``flags.repeat_hours`` (default 24). Anonymous callers are never repeat callers.

A flagged call stays on the flagged-calls page until a supervisor marks it reviewed (audited, and
applied by every archive server through the audit change feed, archive/sync.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archive.config import FlagSettings
from callrec.manifest import CallManifest, EventKind

REPEAT = "repeat_caller"
FLAGS = ("agent_warning", "ended_by_agent", "long_call", REPEAT)



def manifest_flags(m: CallManifest, settings: FlagSettings) -> set[str]:
    kinds = {e.kind for e in m.timeline}
    flags = set()
    if EventKind.WARNING_PLAYED in kinds:
        flags.add("agent_warning")
    if EventKind.ENDED_BY_AGENT in kinds:
        flags.add("ended_by_agent")
    ended = m.ended_at or m.entered_at
    if ended - m.entered_at >= timedelta(minutes=settings.long_call_minutes):
        flags.add("long_call")
    return flags


def reviewed_by(who: str, at: datetime) -> str:
    return f"{who} {at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def joined(flags: set[str]) -> str:
    return ",".join(f for f in FLAGS if f in flags)


def repeat_changes(calls: list[tuple[str, int, str]], entered_ms: int,
                   settings: FlagSettings) -> list[tuple[str, str]]:
    """The ``repeat_caller`` flags a call entered at ``entered_ms`` changes, as (call id, new
    flags), among ``calls``: (call id, entered ms, flags) of the same caller from
    ``repeat_hours`` before it to ``repeat_hours`` after it, in time order (the catalog reads
    them, archive/catalog/sqlite.py). Only calls from it on can change (itself included)."""
    window = int(settings.repeat_hours * 3600_000)
    times = [at for _, at, _ in calls]
    changes = []
    for call_id, at, flags in calls:
        if at < entered_ms:
            continue
        earlier = sum(1 for t in times if at - window <= t <= at)  # itself included
        have = set(filter(None, flags.split(",")))
        want = have | {REPEAT} if earlier >= settings.repeat_calls else have - {REPEAT}
        if want != have:
            changes.append((call_id, joined(want)))
    return changes
