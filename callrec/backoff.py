"""The one backoff helper: delays that grow from ``first`` by ``factor`` up to ``cap``.

Jitter only shortens a delay (by up to ``jitter`` of it): many clients retrying together spread
out, and the cap still holds.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, first: float, cap: float, factor: float = 2.0,
                 jitter: float = 0.2) -> None:
        if not 0 < first <= cap or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 < first <= cap, factor >= 1, 0 <= jitter < 1")
        self.first, self.cap, self.factor, self.jitter = first, cap, factor, jitter
        self._next = first

    def next(self) -> float:
        """The delay to wait now; the one after it grows."""
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay * (1 - self.jitter * random.random()) if self.jitter else delay

    def reset(self) -> None:
        """After a success: the next failure starts again from ``first``."""
        self._next = self.first
