"""A fake clock, and a queue that hands out items at set times on it: batching without sleeping."""

from __future__ import annotations

import queue
from collections.abc import Iterable


class FakeClock:
    """A clock that moves only when told (or when a Scripted queue waits)."""

    def __init__(self, start: float = 1000.0):
        self.time = start

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


class Scripted:
    """A queue whose items arrive at given delays after the start; a wait moves the clock instead of sleeping.

    `get` returns the next item if it has arrived by the end of the timeout
    (moving the clock to its arrival), else moves the clock by the timeout and
    raises queue.Empty, as queue.Queue.get does. Waiting for ever with nothing
    left to arrive is a test's mistake: it raises.
    """

    def __init__(self, clock: FakeClock, now: Iterable[object] = (), later: Iterable[tuple[float, object]] = ()):
        self.clock = clock
        start = clock.now()
        self.items = [(start, item) for item in now] + sorted(
            ((start + delay, item) for delay, item in later), key=lambda pair: pair[0]
        )

    def put(self, item: object, delay: float = 0.0) -> None:
        self.items.append((self.clock.now() + delay, item))
        self.items.sort(key=lambda pair: pair[0])

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        if self.items and self.items[0][0] <= self.clock.now():
            return self.items.pop(0)[1]
        if not block:
            raise queue.Empty
        if self.items and (timeout is None or self.items[0][0] <= self.clock.now() + timeout):
            at, item = self.items.pop(0)
            self.clock.time = at
            return item
        if timeout is None:
            raise AssertionError("waiting for ever on an empty scripted queue")
        self.clock.advance(timeout)
        raise queue.Empty

    def get_nowait(self) -> object:
        return self.get(block=False)
