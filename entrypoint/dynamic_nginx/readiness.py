"""Readiness: a new replica joins once its port accepts connections.

Docker's `start` comes before the app inside listens (a Python app takes a
few hundred milliseconds). Added at once, the replica would refuse nginx's
first connection, and `max_fails` would then keep it out for `fail_timeout`.
So the watcher connects to each new server address first (from the proxy's
own network namespace, as nginx will) and adds it only once that succeeds.
Containers with a HEALTHCHECK are gated by their health instead.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable

from .model import Model

FAST_RECHECK = 0.05  # seconds between probes while a replica is new
SLOW_RECHECK = 1.0  # ... once it has not listened for FAST_FOR seconds
FAST_FOR = 5.0


def accepts(address: str, timeout: float = 0.2) -> bool:
    """True if a TCP connection to `ip:port` is accepted (then closed at once)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


class Readiness:
    """Remembers which (container, address) pairs have accepted a connection."""

    def __init__(self, probe: Callable[[str], bool] = accepts, log: logging.Logger | None = None):
        self.probe = probe
        self.log = log or logging.getLogger("watcher")
        self._ready: set[tuple[str, str]] = set()
        self._waiting: dict[str, float] = {}

    def unready(self, model: Model) -> set[str]:
        """Ids of containers with a server address that does not accept connections yet."""
        now = time.monotonic()
        servers = [s for u in model.upstreams for s in u.servers]
        unready: set[str] = set()
        for server in servers:
            key = (server.container.id, server.address)
            if key in self._ready or server.container.health is not None:
                continue
            if self.probe(server.address):
                self._ready.add(key)
            else:
                unready.add(server.container.id)
                if server.container.id not in self._waiting:
                    self.log.info(
                        "container %s: %s does not accept connections yet; it joins when it does",
                        server.comment,
                        server.address,
                    )
                self._waiting.setdefault(server.container.id, now)
        self._forget(s.container.id for s in servers)
        self._waiting = {cid: t for cid, t in self._waiting.items() if cid in unready}
        return unready

    def _forget(self, present: Iterable[str]) -> None:
        ids = set(present)
        self._ready = {key for key in self._ready if key[0] in ids}

    def recheck_in(self) -> float | None:
        """Seconds until the next probe is due, or None if nobody is waiting."""
        if not self._waiting:
            return None
        youngest = max(self._waiting.values())
        return FAST_RECHECK if time.monotonic() - youngest < FAST_FOR else SLOW_RECHECK
