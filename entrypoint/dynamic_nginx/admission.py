"""When a replica Docker runs may be served again: after a stop signal it survived, and while it crash-loops.

Two small policies over container ids, with an injectable clock and no I/O.
The watcher tells them what Docker did and asks them what to hold back; it
also wakes itself at their deadlines (`next_deadline`), so a decision that
only time can change is not left for the next resync.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Iterable

Clock = Callable[[], float]

DOCKER_STOP_TIMEOUT = 10.0  # Docker's stop grace period when a container sets none
GRACE_MARGIN = 1.0  # past the grace period, Docker's SIGKILL and its events have had time to arrive
FLAP_WINDOW = 30.0  # seconds in which FLAP_STARTS starts make a container flapping
FLAP_STARTS = 3
FLAP_HOLD = 2.0  # a flapping container rejoins after running this long; doubled at each further start
FLAP_HOLD_MAX = 60.0


@dataclasses.dataclass(frozen=True)
class Departure:
    """A replica out of its upstreams since a kill with its stop signal; back if Docker still runs it at `until`."""

    name: str
    signal: str
    grace: float
    since: float
    until: float


class Leaving:
    """Replicas out of their upstreams because Docker sent them the signal it stops them with.

    `docker stop` follows its signal with SIGKILL once the grace period is
    over, and `kill`/`die` events follow; a replica Docker still reports
    running past that point (plus a margin) was sent the signal by hand and
    chose to live on, so it is due back (after one more look at Docker).
    Every new stop signal (SIGKILL after SIGTERM, say) restarts its clock.
    A `docker stop -t` longer than the container's own grace period is not
    visible here: such a replica is back after its own grace period, until
    the SIGKILL takes it out again.
    """

    def __init__(self, clock: Clock = time.monotonic, margin: float = GRACE_MARGIN):
        self._clock = clock
        self._margin = margin
        self._departures: dict[str, Departure] = {}

    def kill(self, container_id: str, name: str, signal: str, grace: float | None) -> Departure:
        """Record the stop signal a replica was sent; `grace` None means Docker's default."""
        seconds = DOCKER_STOP_TIMEOUT if grace is None else grace
        now = self._clock()
        departure = Departure(name, signal, seconds, now, now + seconds + self._margin)
        self._departures[container_id] = departure
        return departure

    def discard(self, container_id: str) -> Departure | None:
        """It started again or is gone: nothing left to wait for."""
        return self._departures.pop(container_id, None)

    def due(self) -> dict[str, Departure]:
        """The departures whose time is up, removed: look at Docker again, and serve those still running."""
        now = self._clock()
        over = {i: d for i, d in self._departures.items() if d.until <= now}
        for container_id in over:
            del self._departures[container_id]
        return over

    def next_deadline(self) -> float | None:
        return min((d.until for d in self._departures.values()), default=None)


@dataclasses.dataclass(frozen=True)
class Hold:
    """A flapping container's wait after a start: `new` when this start made it flapping."""

    seconds: float
    starts: int
    window: float
    new: bool


class Flapping:
    """Holds back the re-adds of a crash-looping container, so its flaps cost few reloads.

    A container that started FLAP_STARTS times within FLAP_WINDOW seconds is
    flapping: after each start it rejoins only once it has run for a hold time
    (FLAP_HOLD, doubled for every further start in the window, at most
    FLAP_HOLD_MAX). One that dies within its hold was never added, so its
    death changes nothing either. Taking a container out is never delayed,
    and a container with fewer starts in the window (any healthy replica) is
    never held.
    """

    def __init__(
        self,
        clock: Clock = time.monotonic,
        window: float = FLAP_WINDOW,
        starts: int = FLAP_STARTS,
        hold: float = FLAP_HOLD,
        hold_max: float = FLAP_HOLD_MAX,
    ):
        self._clock = clock
        self._window = window
        self._starts = starts
        self._hold = hold
        self._hold_max = hold_max
        self._started: dict[str, collections.deque[float]] = {}
        self._held: dict[str, float] = {}  # id -> when it may rejoin, if it still runs then
        self._flapping: set[str] = set()  # from the start that made it flapping to the end of a hold

    def started(self, container_id: str) -> Hold | None:
        """Record a start; how long the container waits if it is flapping, else None."""
        now = self._clock()
        starts = self._started.setdefault(container_id, collections.deque())
        while starts and now - starts[0] > self._window:
            starts.popleft()
        starts.append(now)
        if len(starts) < self._starts:
            self._held.pop(container_id, None)
            self._flapping.discard(container_id)
            return None
        seconds = min(self._hold_max, self._hold * 2 ** (len(starts) - self._starts))
        self._held[container_id] = now + seconds
        new = container_id not in self._flapping
        self._flapping.add(container_id)
        return Hold(seconds, len(starts), self._window, new)

    def held(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that must stay out for now."""
        now = self._clock()
        return {i for i in ids if self._held.get(i, now) > now}

    def released(self) -> list[str]:
        """The containers whose hold is over, each reported once: serve them if they still run.

        A hold that ends is the end of the flapping; the next start within the
        window makes it flapping again, with a longer hold.
        """
        now = self._clock()
        over = sorted(i for i, until in self._held.items() if until <= now)
        for container_id in over:
            del self._held[container_id]
            self._flapping.discard(container_id)
        return over

    def forget(self, container_id: str) -> None:
        """The container is destroyed: its history goes, so the history cannot grow without end."""
        self._started.pop(container_id, None)
        self._held.pop(container_id, None)
        self._flapping.discard(container_id)

    def next_deadline(self) -> float | None:
        return min(self._held.values(), default=None)
