"""The bounded hand-over of Docker events from the event thread to the watcher.

A burst of events (thousands of containers changing at once, or a watcher
slowed down) must not grow memory without limit. Past the limit an event is
dropped, and in its place the watcher is told once to list everything: a list
shows what the dropped events changed, as the periodic resync does for the
events the daemon itself drops.
"""

from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger("watcher")
MAX_QUEUED = 4096  # events waiting; each holds the container's labels, so a few KiB at most
OVERFLOW = object()  # put on the queue in place of dropped events: list everything


class Inbox:
    """Puts events on `events` while fewer than `limit` wait; past that, drops them and
    makes sure an OVERFLOW marker is on its way that the watcher has not taken yet."""

    def __init__(self, events: queue.Queue[object], limit: int = MAX_QUEUED):
        self._events = events
        self._limit = limit
        self._pending = threading.Event()  # an OVERFLOW is queued and not yet taken
        self._dropping = False  # logged; until the queue is half empty again

    def put(self, event: object) -> None:
        """Called from the event thread."""
        waiting = self._events.qsize()
        if waiting < self._limit:
            self._events.put(event)
            if self._dropping and waiting < self._limit // 2:
                self._dropping = False
            return
        if not self._pending.is_set():
            self._pending.set()
            self._events.put(OVERFLOW)
        if not self._dropping:
            self._dropping = True
            log.warning(
                "more than %d Docker events are waiting: dropping the rest of this burst and listing all containers",
                self._limit,
            )

    def taken(self) -> None:
        """The watcher took an OVERFLOW and lists from now on: an event dropped
        later needs another OVERFLOW. Call before listing."""
        self._pending.clear()
