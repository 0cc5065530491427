"""The status model: what the watcher and the reloader decided, as JSON in the run dir.

Each program that decides keeps its own part and writes it after each change
(the watcher: upstreams, members, the Docker connection, once it is idle,
see WatcherStatus; the reloader: the last reloads), atomically and only when
the bytes differ. The status server (status_server) only reads and composes
them: no program ever asks another.

Everything here is plain data in, plain data out, except the two writers.
The parts are written whether or not DYNAMIC_NGINX_STATUS_LISTEN is set (one
small file replaced per change, off the start-up path and off a change's way
to nginx), so `dynamic-nginx status` answers in any container; only the
endpoints are opt-in.

Secrets: values of environment variables and labels whose names look like
secrets (`redact`) are never written here.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import labels as L
from . import marker
from .batching import Clock, Monotonic
from .exclusions import Exclusion
from .model import Model, Server, Upstream

# Bumped when a field changes meaning or goes away; new fields do not bump it.
SCHEMA = 1
# Member states, in the order the page and /metrics show them.
STATES = ("active", "backup", "draining", "starting")
# Reload results: nginx runs the files now | nginx -t rejected them | nginx did not take the signal.
RESULTS = ("ok", "invalid", "failed")
RECENT_RELOADS = 20
REDACTED = "(redacted)"
# The watcher's part is written once it has been idle this long (s), at most STATUS_LATE after a change.
STATUS_IDLE = 0.25
STATUS_LATE = 1.0
# A name that says its value is a secret: matched as a word part, case-insensitively
# (DB_PASSWORD, apiKey, x-auth-token, traefik.http.middlewares.a.basicauth.users).
SECRET_NAME_RE = re.compile(
    r"pass(word|wd|phrase)?|secret|token|(api|private|access|secret|signing|encryption)?[_.-]?key(s|file)?\b"
    r"|credential|auth|cookie|session|salt|signature|cert|dsn|\.users\b",
    re.IGNORECASE,
)
# user:password@ in a URL (DOCKER_HOST=tcp://user:pw@host, a DSN in a label).
URL_PASSWORD_RE = re.compile(r"(?<=://)([^/@:\s]*):([^/@\s]*)@")


def is_secret_name(name: str) -> bool:
    """True if a variable or label of this name may hold a secret."""
    return SECRET_NAME_RE.search(name) is not None


def redact(name: str, value: str) -> str:
    """The value to show for a variable or label: REDACTED if its name looks like
    a secret's, else the value with any URL password masked."""
    if is_secret_name(name):
        return REDACTED
    return URL_PASSWORD_RE.sub(lambda m: f"{m.group(1)}:{REDACTED}@", value)


def redacted(values: Mapping[str, str]) -> dict[str, str]:
    return {name: redact(name, value) for name, value in sorted(values.items())}


def state(server: Server) -> str:
    """A member's state as far as the model knows: in an upstream it is active, or backup."""
    return "backup" if server.options.backup else "active"


def member(server: Server) -> dict[str, Any]:
    """One `server` line of an upstream, with the container behind it."""
    c, o = server.container, server.options
    return {
        "name": c.name,
        "id": c.id,
        "service": c.service,
        "project": c.project,
        "network": server.network,
        "address": server.address,
        "server": f"server {server.address}{' ' + server.parameters if server.parameters else ''};",
        "parameters": server.parameters,
        "weight": o.weight,
        "backup": o.backup,
        "down": o.down,
        "max_fails": o.max_fails,
        "fail_timeout": o.fail_timeout,
        "max_conns": o.max_conns,
        "health": c.health or "none",
        "state": state(server),
        "labels": redacted({k: v for k, v in c.labels.items() if k.startswith(L.LABEL_PREFIX)}),
    }


def upstream(u: Upstream) -> dict[str, Any]:
    return {
        "name": u.name,
        "lb": u.lb or "round_robin",
        "zone_size": u.zone_size,
        "keepalive": u.keepalive,
        "keepalive_timeout": u.keepalive_timeout,
        "keepalive_requests": u.keepalive_requests,
        "members": [member(s) for s in u.servers],
    }


def exclusion(entry: Exclusion) -> dict[str, Any]:
    """A container left out, with its reason code (see exclusions.EXCLUSION_REASONS)."""
    return {
        "name": entry.container,
        "id": entry.id,
        "service": entry.service,
        "project": entry.project,
        "reason": entry.reason,
        "detail": entry.detail,
    }


def watcher_part(model: Model, docker: Mapping[str, Any]) -> dict[str, Any]:
    """The watcher's part: every upstream with its members, the containers left
    out (`excluded`, each with a reason code), the
    problems as logged, and the Docker connection."""
    return {
        "schema": SCHEMA,
        "proxy": {"id": model.proxy.id, "name": model.proxy.name, "project": model.proxy.project},
        "upstreams": [upstream(u) for u in model.upstreams],
        "excluded": [exclusion(e) for e in model.excluded],
        "problems": list(model.problems),
        "warnings": list(model.warnings),
        "docker": dict(docker),
    }


def encode(data: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: equal content, equal bytes (so unchanged status is not rewritten)."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


class StatusFile:
    """One JSON file in the run dir, replaced atomically and only when its bytes change."""

    def __init__(self, path: Path | None):
        self.path = path
        self._last = b""

    def write(self, data: Mapping[str, Any]) -> None:
        self.write_bytes(encode(data))

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def write_bytes(self, body: bytes) -> None:
        if self.path is None:
            return
        if body == self._last:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            marker.replace(self.path, body)
            self._last = body
        except OSError:
            pass  # the status is a window, never a reason to fail: the next change tries again


def action_name(action: str) -> str:
    """`health_status: healthy` -> `health_status`: bounded, and no command lines (exec_start: ...)."""
    return action.split(":", 1)[0].strip() or "unknown"


def compact(data: Any) -> str:
    """Deterministic JSON without spaces: what the run dir's parts are written as."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Coalesce:
    """When to write a part that changes often: once `idle` seconds passed
    without a change, and never more than `late` seconds after the first
    change not yet written. Time comes from an injectable clock."""

    def __init__(self, clock: Clock, idle: float = STATUS_IDLE, late: float = STATUS_LATE):
        self.clock, self.idle, self.late = clock, idle, late
        self._first: float | None = None
        self._last = 0.0

    def changed(self) -> None:
        now = self.clock.now()
        if self._first is None:
            self._first = now
        self._last = now

    def due(self) -> float | None:
        """The clock time at which to write; None when nothing waits."""
        if self._first is None:
            return None
        return min(self._last + self.idle, self._first + self.late)

    def wrote(self) -> None:
        self._first = None


class WatcherStatus:
    """The watcher's part, kept up to date by one call per happening; a no-op when `path` is None.

    A sync only records its model: serialising every member of 1,000
    containers took about 20 ms, on the path from a Docker event to nginx.
    The file is written by `write_due` (the watcher calls it between
    batches) once the watcher has been idle for STATUS_IDLE seconds, at
    most STATUS_LATE seconds after the change (see `Coalesce`), and by
    `flush`. A lost connection is written at once. Upstreams whose
    members did not change are not serialised again.
    """

    def __init__(self, path: Path | None, clock: Clock | None = None):
        self._file = StatusFile(path)
        self._lock = threading.Lock()
        self._model: Model | None = None
        self._when = Coalesce(clock or Monotonic())
        self._upstreams: dict[str, tuple[Upstream, str]] = {}  # name -> (as last serialised, its JSON)
        self._docker: dict[str, Any] = {
            "connected": False,
            "api_version": None,
            "connected_since": None,
            "last_event_at": None,
            "reconnects": 0,
            "events": {},
            "error": None,
        }
        self._events: collections.Counter[str] = collections.Counter()
        self._sessions = 0

    @property
    def on(self) -> bool:
        return self._file.path is not None

    def connected(self, api_version: str | None) -> None:
        if not self.on:
            return
        with self._lock:
            self._sessions += 1
            self._docker.update(
                connected=True,
                api_version=api_version,
                connected_since=round(time.time(), 3),
                reconnects=max(self._sessions - 1, 0),
                error=None,
            )
            self._when.changed()

    def disconnected(self, error: str) -> None:
        if not self.on:
            return
        with self._lock:
            self._docker.update(connected=False, error=error)
            self._write()

    def events(self, batch: Iterable[object]) -> None:
        """Count the Docker events of a batch by action (the ones the watcher took in)."""
        if not self.on:
            return
        with self._lock:
            for event in batch:
                action = getattr(event, "action", None)
                if isinstance(action, str):
                    self._events[action_name(action)] += 1
                    at = getattr(event, "at", 0.0) or time.time()
                    self._docker["last_event_at"] = round(max(at, self._docker["last_event_at"] or 0.0), 3)
            self._docker["events"] = dict(sorted(self._events.items()))

    def synced(self, model: Model) -> None:
        if not self.on:
            return
        with self._lock:
            self._model = model
            self._when.changed()

    def due(self) -> float | None:
        """The clock time by which the file should be written; None when it is up to date."""
        with self._lock:
            return self._when.due()

    def write_due(self) -> None:
        """Write the file if its time has come (see `due`)."""
        with self._lock:
            due = self._when.due()
            if due is not None and due <= self._when.clock.now():
                self._write()

    def flush(self) -> None:
        """Write what is not written yet, now."""
        with self._lock:
            if self._when.due() is not None:
                self._write()

    def _write(self) -> None:
        self._when.wrote()
        if self._model is not None:
            self._file.write_text(self._text(self._model))

    def _text(self, model: Model) -> str:
        """watcher_part(model, docker) as compact JSON, reusing the JSON of unchanged upstreams."""
        rest = watcher_part(dataclasses.replace(model, upstreams=()), self._docker)
        del rest["upstreams"]
        texts, kept = [], {}
        for u in model.upstreams:
            last = self._upstreams.get(u.name)
            text = last[1] if last is not None and last[0] == u else compact(upstream(u))
            kept[u.name] = (u, text)
            texts.append(text)
        self._upstreams = kept
        return f'{compact(rest)[:-1]},"upstreams":[{",".join(texts)}]}}\n'


# Seconds from a Docker event to nginx running the files it changed: the histogram's upper bounds.
EVENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def write_applied(path: Path | None, event_at: float, written_at: float) -> None:
    """The watcher, after writing files changed by Docker events: the oldest such event's time.

    The reloader reads it after a confirmed reload (`ReloadHistory.confirmed`);
    neither program calls the other. Best effort, like the rest of the status.
    """
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        marker.replace(path, encode({"event_at": round(event_at, 6), "written_at": round(written_at, 6)}))
    except OSError:
        pass


class Histogram:
    """A Prometheus histogram's figures: cumulative counts per upper bound, sum and count."""

    def __init__(self, bounds: tuple[float, ...] = EVENT_BUCKETS):
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        value = max(value, 0.0)  # Docker's clock and ours are the same host's; never below zero
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def part(self) -> dict[str, Any]:
        return {
            "buckets": [[b, n] for b, n in zip(self.bounds, self.counts, strict=True)],
            "sum": round(self.sum, 6),
            "count": self.count,
        }


def reload_entry(at: float, duration: float, result: str, error: str) -> dict[str, Any]:
    return {"at": round(at, 3), "duration_seconds": round(duration, 4), "result": result, "error": error or None}


class ReloadHistory:
    """The reloader's part: the last reloads (time, result, duration, nginx's error in
    full), counts by result and the configuration generation; a no-op when `path` is None."""

    def __init__(self, path: Path | None):
        self._file = StatusFile(path)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_RELOADS)
        self.totals = dict.fromkeys(RESULTS, 0)
        self.generation = 0
        self.last_success_at: float | None = None
        self.event_to_applied = Histogram()
        self._applied_seen = 0.0  # written_at of the last watcher write counted

    def add(self, at: float, duration: float, result: str, error: str = "") -> None:
        if self._file.path is None:
            return
        self.totals[result] += 1
        if result == "ok":
            self.generation += 1
            self.last_success_at = round(at + duration, 3)
        self.recent.appendleft(reload_entry(at, duration, result, error))
        self._file.write(self.part())

    def confirmed(self, applied: Path, began: float, now: float) -> bool:
        """After a reload that began at `began` (wall clock) succeeded: if the watcher's last write
        (see `write_applied`) came before it and was not counted yet, observe event -> now.
        True if it did; the next `add` writes it.

        A write after `began` may have missed this reload; its own file event
        brings the next one, which counts it.
        """
        if self._file.path is None:
            return False
        stamp = load(applied)
        try:
            event_at, written_at = float(stamp["event_at"]), float(stamp["written_at"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            return False  # none yet, or not one of ours
        if written_at <= self._applied_seen or written_at > began:
            return False
        self._applied_seen = written_at
        self.event_to_applied.observe(now - event_at)
        return True

    def part(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "event_to_applied_seconds": self.event_to_applied.part(),
            "generation": self.generation,
            "totals": dict(self.totals),
            "last_success_at": self.last_success_at,
            "recent": list(self.recent),
        }


def load(path: Path) -> dict[str, Any] | None:
    """A part as last written; None if there is none (yet) or it cannot be read."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The proxy's own settings (DYNAMIC_NGINX_*, DOCKER_*), secrets redacted."""
    return redacted({k: v for k, v in environ.items() if k.startswith(("DYNAMIC_NGINX_", "DOCKER_"))})


def compose(
    watcher: Mapping[str, Any] | None,
    reloads: Mapping[str, Any] | None,
    environ: Mapping[str, str],
    now: float,
) -> dict[str, Any]:
    """status.json: the two parts side by side, with what is missing said as such."""
    watcher = dict(watcher or {})
    return {
        "schema": SCHEMA,
        "generated_at": round(now, 3),
        "proxy": watcher.get("proxy"),
        "upstreams": watcher.get("upstreams", []),
        "excluded": watcher.get("excluded", []),
        "problems": watcher.get("problems", []),
        "warnings": watcher.get("warnings", []),
        "docker": watcher.get("docker") or {"connected": False, "error": "the watcher has not reported yet"},
        "reloads": dict(reloads) if reloads else ReloadHistory(None).part(),
        "environment": environment(environ),
    }
