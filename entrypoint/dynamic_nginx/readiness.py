"""Readiness: a new replica joins once its port accepts connections.

Docker's `start` comes before the app inside listens (by however long the
app takes to start). Added at once, the replica would refuse nginx's
first connection, and `max_fails` would then keep it out for `fail_timeout`.
So the watcher connects to each new server address first (from the proxy's
own network namespace, as nginx will) and adds it only once that succeeds.
Containers with a HEALTHCHECK are gated by their health instead.

The first probe runs inside the watcher's rebuild, so replicas already
listening (the first render, a resync) join at once. Addresses that refuse
are then probed by a background thread every few milliseconds, all at once
with non-blocking connects, and `notify` is called the moment one accepts:
the time from "listening" to "in the upstream" is a probe interval plus one
rebuild, not a debounce plus a Docker round trip.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Collection

from .model import Model, Server

FAST_POLL = 0.005  # seconds between probe rounds while a replica is new
SLOW_POLL = 1.0  # ... once it has not listened for FAST_FOR seconds
FAST_FOR = 5.0
PROBE_TIMEOUT = 0.05  # a round waits this long for connects that neither succeed nor fail

Probe = Callable[[Collection[str], float], set[str]]


def split_address(address: str) -> tuple[str, int] | None:
    """`ip:port` (or `[ipv6]:port`) as a (host, port) pair; None if malformed."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def accepting(addresses: Collection[str], timeout: float = PROBE_TIMEOUT) -> set[str]:
    """The addresses that accept a TCP connection within `timeout` (connections are closed at once).

    All connects run in parallel, so a refusal (the common case: the app is
    not listening yet) costs microseconds and an address that drops packets
    costs at most `timeout`, whatever the number of addresses.
    """
    ready: set[str] = set()
    sockets: dict[int, socket.socket] = {}
    try:
        with selectors.DefaultSelector() as selector:
            for address in addresses:
                target = split_address(address)
                if target is None:
                    continue
                sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET)
                sockets[sock.fileno()] = sock
                sock.setblocking(False)
                if sock.connect_ex(target) in (0, errno.EINPROGRESS, errno.EAGAIN):
                    selector.register(sock.fileno(), selectors.EVENT_WRITE, address)
            deadline = time.monotonic() + timeout
            while selector.get_map() and (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    if sockets[key.fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        ready.add(key.data)
                    selector.unregister(key.fd)
    finally:
        for sock in sockets.values():
            sock.close()
    return ready


class Readiness:
    """Remembers which (container, address) pairs have accepted a connection,
    and keeps probing the others until they do (or leave the model)."""

    def __init__(
        self,
        probe: Probe = accepting,
        notify: Callable[[], None] | None = None,
        log: logging.Logger | None = None,
    ):
        self.probe = probe
        self.notify = notify  # called from the prober thread when an address starts accepting
        self.log = log or logging.getLogger("watcher")
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._ready: set[tuple[str, str]] = set()
        self._waiting: dict[tuple[str, str], float] = {}  # key -> when first refused
        self._thread: threading.Thread | None = None
        self._stopped = False  # under the lock: set once by stop(), ends the prober

    def unready(self, model: Model) -> set[str]:
        """`unready_servers` for the servers of a model's upstreams that have no health check."""
        return self.unready_servers([s for u in model.upstreams for s in u.servers if s.container.health is None])

    def unready_servers(self, servers: Collection[Server]) -> set[str]:
        """Ids of containers with a server address that does not accept connections yet.

        `servers` are all the servers to be probed now: addresses not among
        them are forgotten. Probes every new address once, here; those that
        refuse are handed to the background prober, which calls `notify` when
        one accepts.
        """
        keys = {(s.container.id, s.address): s for s in servers}
        with self._lock:
            self._ready &= set(keys)
            self._waiting = {k: t for k, t in self._waiting.items() if k in keys}
            new = [k for k in keys if k not in self._ready and k not in self._waiting]
        accepted = self.probe({address for _, address in new}, PROBE_TIMEOUT) if new else set()
        now = time.monotonic()
        with self._lock:
            for key in new:
                if key[1] in accepted:
                    self._ready.add(key)
                else:
                    self._waiting[key] = now
                    server = keys[key]
                    self.log.info(
                        "container %s: %s does not accept connections yet; it joins when it does",
                        server.comment,
                        server.address,
                    )
            unready = {cid for cid, _ in self._waiting}
            if self._waiting and self.notify is not None:
                self._start_prober()
                if new:
                    self._wake.notify()
        return unready

    def waiting(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._waiting)

    def stop(self, timeout: float | None = None) -> None:
        """End the background prober (for good) and wait up to `timeout` for its thread.

        The watcher calls it when it stops, so no thread of it outlives it.
        """
        with self._lock:
            self._stopped = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _start_prober(self) -> None:
        if not self._stopped and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._probe_until_stopped, name="readiness", daemon=True)
            self._thread.start()

    def _probe_until_stopped(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                waiting = dict(self._waiting)
            accepted = self.probe({address for _, address in waiting}, PROBE_TIMEOUT)
            joined = False
            with self._lock:
                for key in waiting:
                    if key[1] in accepted and key in self._waiting:
                        del self._waiting[key]
                        self._ready.add(key)
                        joined = True
            if joined and self.notify is not None:
                self.notify()
            with self._lock:
                youngest = max(self._waiting.values(), default=None)
                old = youngest is not None and time.monotonic() - youngest >= FAST_FOR
                if not self._stopped:
                    self._wake.wait(SLOW_POLL if old else FAST_POLL)  # a new address (or stop) wakes it early
