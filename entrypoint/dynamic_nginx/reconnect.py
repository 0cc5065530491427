"""Staying connected to Docker: backoff, a quick probe, naming what failed, a stall watchdog.

Pure policy with an injectable clock, sleep and random source, so that the
watcher's reconnect loop stays a few lines and the policy is table-tested.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

PROBE_EVERY = 0.5  # while backing off, how often to check whether Docker answers again
PROBE_TIMEOUT = 0.5
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# Seconds without an event before the watchdog pings Docker: shorter than the
# default resync interval, which would otherwise be the first to notice.
WATCHDOG_QUIET = 15.0

UNREACHABLE = "unreachable"
NOT_ANSWERING = "not answering"
REFUSED = "refused"
API_ERROR = "API error"


class Backoff:
    """Jittered exponential delays that never give up: about base, 2*base, ...
    up to `cap`, each drawn from the upper half of its step ([d/2, d]) so that
    proxies that lost Docker together do not all retry in step."""

    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, rand: Callable[[], float] = random.random):
        self.base = base
        self.cap = cap
        self._rand = rand
        self.attempt = 0

    def next(self) -> float:
        step: float = min(self.cap, self.base * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return step / 2 + step / 2 * self._rand()

    def reset(self) -> None:
        self.attempt = 0


def wait(
    delay: float,
    probe: Callable[[], bool] | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    every: float = PROBE_EVERY,
) -> bool:
    """Wait `delay` seconds, or less: with a probe, check every `every` seconds
    and return True as soon as it succeeds, so that a long backoff never delays
    noticing that Docker is back by more than about `every`."""
    deadline = clock() + delay
    while (left := deadline - clock()) > 0:
        sleep(min(every, left) if probe else left)
        if probe is not None and clock() < deadline and probe():
            return True
    return False


def endpoint() -> str:
    """Where Docker is asked, as the user configured it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def prober(where: str | None = None, timeout: float = PROBE_TIMEOUT) -> Callable[[], bool]:
    """A cheap "does Docker answer?" check: `GET /_ping` on a Unix socket (a
    socket proxy that accepts but cannot reach Docker fails it), a TCP connect
    otherwise (TLS is left to the real connection)."""
    from .docker_source import SocketApi  # no docker-py: the probe must stay cheap

    url = urlsplit(where or endpoint())

    def unix() -> bool:
        try:
            SocketApi(url.path, timeout).ping()
        except Exception:
            return False
        return True

    def tcp() -> bool:
        try:
            with socket.create_connection((url.hostname or "localhost", url.port or 2375), timeout):
                return True
        except OSError:
            return False

    return unix if url.scheme in ("unix", "") else tcp


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes and the errors wrapped in its args (requests and
    urllib3 put the socket's OSError there)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]


def _status(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def classify(error: BaseException) -> str:
    """What kind of failure: Docker unreachable (no socket, nobody listening),
    not answering (a timeout), refused (permissions, or a socket proxy's 401/403),
    or an API error (any other HTTP status)."""
    chain = list(_chain(error))
    for e in chain:
        status = _status(e)
        if status is not None:
            return REFUSED if status in (401, 403) else API_ERROR
        if isinstance(e, PermissionError):
            return REFUSED
    if any(isinstance(e, TimeoutError) or "timed out" in str(e).lower() for e in chain):
        return NOT_ANSWERING
    if any(isinstance(e, OSError) for e in chain):
        return UNREACHABLE
    return API_ERROR


_VERSION_PREFIX_RE = re.compile(r"^/v[0-9.]+(?=/)")
_CONTAINER_ID_RE = re.compile(r"^/containers/[^/]+/json$")


def refused_call(error: BaseException) -> str | None:
    """`GET /events`: the call a 401/403 answered, version prefix, query and
    container id taken out (as a socket proxy's allow-list names it); None if
    the error carries no such request."""
    for e in _chain(error):
        if _status(e) not in (401, 403):
            continue
        request = getattr(e, "request", None) or getattr(getattr(e, "response", None), "request", None)
        method = getattr(request, "method", None)
        target = getattr(request, "path_url", None)
        if isinstance(method, str) and isinstance(target, str):
            path = _VERSION_PREFIX_RE.sub("", urlsplit(target).path)
            return f"{method} {'/containers/{id}/json' if _CONTAINER_ID_RE.match(path) else path}"
    return None


def describe(kind: str, where: str, detail: str, error: BaseException | None = None) -> str:
    """One log line for a failure of that kind, with what to check (naming the
    call that was refused, if the error says which)."""
    hints = {
        UNREACHABLE: "is the socket's folder mounted (or the socket proxy running)?",
        NOT_ANSWERING: "the engine or a socket proxy in front of it is stalled",
        REFUSED: "check the socket's permissions or the socket proxy's allow-list",
        API_ERROR: "the engine answered with an error",
    }
    call = refused_call(error) if kind == REFUSED and error is not None else None
    if call:
        return (
            f"Docker refused {call} at {where} ({detail}): dynamic-nginx needs it;"
            f" allow {call} in the socket proxy in front of Docker"
        )
    return f"Docker {kind} at {where} ({detail}): {hints.get(kind, '')}".rstrip(": ")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class Outage:
    """Logs a Docker outage once: its first failure (and a change of its kind),
    then the recovery with how long it lasted; every retry in between is debug."""

    def __init__(self, log: logging.Logger, where: str, clock: Callable[[], float] = time.monotonic):
        self._log = log
        self._where = where
        self._clock = clock
        self.began: float | None = None
        self.kind = ""
        self.attempts = 0

    def failed(self, error: BaseException, kind: str | None = None) -> str:
        """Record a failed attempt; returns its kind."""
        kind = kind or classify(error)
        self.attempts += 1
        if self.began is None:
            self.began = self._clock()
        line = describe(kind, self._where, one_line(error), error) if kind != "not found" else one_line(error)
        if kind != self.kind:
            self._log.error("%s; upstreams stay as they are, retrying until it answers", line)
            self.kind = kind
        else:
            self._log.debug("still failing (attempt %d): %s", self.attempts, line)
        return kind

    def recovered(self) -> None:
        if self.began is not None:
            self._log.warning(
                "Docker answers again at %s after %.1fs (%d failed attempts); resynced",
                self._where,
                self._clock() - self.began,
                self.attempts,
            )
        self.began = None
        self.kind = ""
        self.attempts = 0


class Watchdog:
    """Pings Docker after `quiet` seconds without an event; a failed ping calls
    `on_stall`, which ends the stream so that the watcher reconnects.

    An event stream can stall without ending (a socket proxy or a network path
    that lost the engine may keep our connection open), and nothing else
    would notice: a quiet system and a dead stream look alike.
    """

    def __init__(
        self,
        ping: Callable[[], object],
        on_stall: Callable[[BaseException], None],
        quiet: float = WATCHDOG_QUIET,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._ping = ping
        self._on_stall = on_stall
        self.quiet = quiet
        self._clock = clock
        self.last = clock()

    def heard(self) -> None:
        self.last = self._clock()

    def check(self) -> bool:
        """Ping if quiet for long enough; True if the ping failed (and on_stall was called)."""
        if self._clock() - self.last < self.quiet:
            return False
        try:
            self._ping()
        except Exception as error:
            self._on_stall(error)
            return True
        self.heard()
        return False

    def run(self, stop: threading.Event) -> None:
        """Check until stopped or stalled (in a thread of its own)."""
        while not stop.wait(min(1.0, self.quiet / 4)):
            if self.check():
                return

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="docker-watchdog", daemon=True)
        thread.start()
        return thread
