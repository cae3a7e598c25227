"""The login throttle: counts an attempt before it is checked, slows guessing down, and cannot
be used to lock a user out.

- An attempt is counted the moment it arrives (before scrypt runs), and forgotten only if it
  succeeds: a burst sent in parallel is counted as it comes, not after it was checked.
- Refused outright: only a (client address, user name) pair with ``allowed`` failures in
  ``window_s``: whoever guesses one user's password from one address stops there.
- Elsewhere it only slows down: every failure beyond ``allowed`` for a user name (from any
  address) or from an address (for any user) adds ``step_s`` before the next check of that name
  or from that address, up to ``max_delay_s``. So failures by someone else, or behind a shared
  proxy address, delay a correct password by at most ``max_delay_s``; they never refuse it.
- A refused attempt costs the same scrypt as a checked one: its timing does not say it was
  refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    keys: tuple[str, str, str]  # (address, user) pair, user, address
    at: float
    refused: bool
    delay_s: float


class LoginThrottle:
    def __init__(self, allowed: int = 5, window_s: float = 300.0, step_s: float = 0.5,
                 max_delay_s: float = 5.0) -> None:
        self.allowed, self.window_s = allowed, window_s
        self.step_s, self.max_delay_s = step_s, max_delay_s
        self.recent: dict[str, list[float]] = {}

    def begin(self, address: str, user: str) -> Attempt:
        """Count this attempt now (call before any await); whether to refuse it, and how long
        to wait before checking it."""
        now = time.monotonic()
        keys = (f"pair:{address}\0{user}", f"user:{user}", f"addr:{address}")
        pair, by_user, by_address = (self._count(key, now) for key in keys)
        extra = max(by_user, by_address) - self.allowed
        delay = min(self.max_delay_s, self.step_s * extra) if extra > 0 else 0.0
        for key in keys:
            self.recent.setdefault(key, []).append(now)
        return Attempt(keys, now, pair >= self.allowed, delay)

    def succeeded(self, attempt: Attempt) -> None:
        """A right password: its attempt is not a failure (earlier failures stay)."""
        for key in attempt.keys:
            times = self.recent.get(key, [])
            if attempt.at in times:
                times.remove(attempt.at)

    def _count(self, key: str, now: float) -> int:
        times = [t for t in self.recent.get(key, []) if now - t < self.window_s]
        if times:
            self.recent[key] = times
        else:
            self.recent.pop(key, None)  # nothing kept for names tried once long ago
        return len(times)
