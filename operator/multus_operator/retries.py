"""Backoff: of one loop (`Backoff`) and per item (`Retries`: one object the API keeps
refusing delays nothing else)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Backoff:
    """Exponential backoff: `first`, then twice as long after each further failure, up
    to `cap`, and never less than the server's Retry-After; a success starts it over."""

    def __init__(self, first: float = 1.0, cap: float = 60.0) -> None:
        self.first = first
        self.cap = cap
        self._delay: float | None = None

    def failed(self, at_least: float = 0.0) -> float:
        """How long to wait before the next try."""
        self._delay = self.first if self._delay is None else min(self._delay * 2, self.cap)
        return max(self._delay, at_least)

    def succeeded(self) -> None:
        self._delay = None


class Retries(Generic[K]):
    """Per-item exponential backoff (backoff, then consistent): a `Backoff` per failed
    item, forgotten on its success. Only that item waits: the others are written at once.
    """

    def __init__(
        self,
        first: float = 1.0,
        cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first = first
        self.cap = cap
        self.clock = clock
        self._due: dict[K, float] = {}
        self._backoff: dict[K, Backoff] = {}

    def __len__(self) -> int:
        return len(self._due)

    def failed(self, key: K, at_least: float = 0.0) -> float:
        """Schedule the next try of `key`; return how long it waits."""
        backoff = self._backoff.setdefault(key, Backoff(self.first, self.cap))
        wait = backoff.failed(at_least)
        self._due[key] = self.clock() + wait
        return wait

    def succeeded(self, key: K) -> None:
        self._due.pop(key, None)
        self._backoff.pop(key, None)

    def hurry(self, key: K | None = None) -> None:
        """Make `key` (or every item) due now; a further failure still waits longer."""
        now = self.clock()
        for k in self._due if key is None else [key] if key in self._due else []:
            self._due[k] = now

    def waiting(self, key: K) -> bool:
        """Failed, and not yet due for its next try."""
        return key in self._due and self._due[key] > self.clock()

    def due(self) -> set[K]:
        now = self.clock()
        return {k for k, when in self._due.items() if when <= now}

    def next_in(self) -> float | None:
        """Seconds until the earliest try is due (0 if one is), None if nothing failed."""
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - self.clock())
