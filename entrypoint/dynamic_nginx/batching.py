"""Which queued items the watcher acts on together: a debounce, and a hold during a burst of starts.

Time comes from an injectable `Clock` and items from an injectable `Source`,
so the policy is table-tested with a fake clock; the watcher uses
time.monotonic and a queue.Queue.
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import time
from typing import Protocol

from . import events as E
from .settings import Settings

END = object()  # put on the queue when the event stream ends
READY = object()  # put on the queue by the readiness prober when a new replica's port accepts
WAKE = object()  # returned by collect when a wait of the admission policies is over
RETRY_WRITE = object()  # put on the queue when files that could not be written are due another try
BURST_WINDOW = 2.0  # seconds in which burst_starts starts make a burst


class Clock(Protocol):
    def now(self) -> float: ...


class Monotonic:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()


class Source(Protocol):
    """What collect reads items from; get raises queue.Empty when `timeout` passes (queue.Queue does)."""

    def get(self, block: bool = True, timeout: float | None = None) -> object: ...

    def get_nowait(self) -> object: ...


@dataclasses.dataclass(frozen=True)
class Waits:
    """The batching settings, in seconds (burst_starts is a count)."""

    debounce_min: float
    debounce_max: float
    burst_starts: int
    burst_quiet: float
    burst_max: float

    @classmethod
    def of(cls, settings: Settings) -> Waits:
        return cls(
            settings.debounce_min,
            settings.debounce_max,
            settings.burst_starts,
            settings.burst_quiet,
            settings.burst_max,
        )


def adds(item: object) -> bool:
    """True for what can only add a replica: a start, an unpause, a network connect, a port that opened."""
    return item is READY or (isinstance(item, E.Event) and E.is_addition(item))


class Batcher:
    """Cuts the stream of queued items into batches; remembers recent starts to see bursts."""

    def __init__(self, waits: Waits, clock: Clock | None = None):
        self.waits = waits
        self.clock = clock or Monotonic()
        self._starts: collections.deque[float] = collections.deque()

    def collect(self, source: Source, resync: float | None = None, deadline: float | None = None) -> list[object]:
        """Wait for an item, then keep collecting until quiet for debounce_min
        or debounce_max after the first. Without any item: [WAKE] once
        `deadline` (a clock time) has passed, or [] ("time to resync") after
        `resync` seconds, whichever comes first.

        A port that opened is acted on at once (it is the last step before a
        new replica can serve), unless replicas are arriving in a burst; a
        burst of starts is held (see _hold), so it costs a few reloads.
        """
        now = self.clock.now()
        try:
            first = source.get(timeout=_first_wait(now, resync, deadline))
        except queue.Empty:
            return [WAKE] if deadline is not None and deadline <= self.clock.now() else []
        if first is READY and not self.in_burst():
            return [first, *_drain(source)]
        batch = [first]
        until = self.clock.now() + self.waits.debounce_max
        while first is not END:
            wait = min(self.waits.debounce_min, until - self.clock.now())
            if wait <= 0:
                break
            try:
                item = source.get(timeout=wait)
            except queue.Empty:
                break
            batch.append(item)
            if item is END:
                break
        if self._burst_of_starts(batch):
            self._hold(source, batch)
        return batch

    def in_burst(self) -> bool:
        """True while burst_starts starts arrived within BURST_WINDOW seconds."""
        now = self.clock.now()
        while self._starts and now - self._starts[0] > BURST_WINDOW:
            self._starts.popleft()
        return len(self._starts) >= self.waits.burst_starts

    def _burst_of_starts(self, batch: list[object]) -> bool:
        """True if the batch only adds replicas and starts are arriving in a burst (`--scale web=20`)."""
        starts = [i for i in batch if isinstance(i, E.Event) and E.is_addition(i)]
        self._starts.extend([self.clock.now()] * len(starts))
        return bool(batch) and all(map(adds, batch)) and self.in_burst()

    def _hold(self, source: Source, batch: list[object]) -> None:
        """Keep collecting starts until quiet for burst_quiet or burst_max has
        passed. Anything that may take a replica out ends the wait at once."""
        until = self.clock.now() + self.waits.burst_max
        while True:
            wait = min(self.waits.burst_quiet, until - self.clock.now())
            if wait <= 0:
                return
            try:
                item = source.get(timeout=wait)
            except queue.Empty:
                return
            batch.append(item)
            if not adds(item):
                return
            if item is not READY:
                self._starts.append(self.clock.now())


def _first_wait(now: float, resync: float | None, deadline: float | None) -> float | None:
    """How long to wait for a first item: until the resync, or just past the deadline."""
    if deadline is None:
        return resync
    left = max(0.0, deadline - now) + 0.01  # so that it has passed when the wait ends
    return left if resync is None else min(resync, left)


def _drain(source: Source) -> list[object]:
    """Whatever is queued already, without waiting."""
    items = []
    while True:
        try:
            items.append(source.get_nowait())
        except queue.Empty:
            return items
