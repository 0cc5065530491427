"""What the benchmark measures with: commands, Docker events, HTTP load, wrk.

Every wait is bounded in time and every request loop in count and time;
HTTP goes only to 127.0.0.1.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

T = TypeVar("T")


class BenchError(RuntimeError):
    """Something the benchmark needs did not happen (a build, a replica, a deadline)."""


def run(args: list[str], timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; with check, fail naming it and its output."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise BenchError(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


def wait_until(check: Callable[[], T | None], deadline: float, interval: float = 0.01) -> T | None:
    """Poll check until it gives something other than None or the wall clock passes deadline."""
    while True:
        value = check()
        if value is not None or time.time() >= deadline:
            return value
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str, timeout: float = 3.0) -> tuple[int, str]:
    """One GET on a fresh connection to 127.0.0.1; (0, error name) when no HTTP answer came."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as error:
        return 0, type(error).__name__
    finally:
        connection.close()


@dataclasses.dataclass(frozen=True)
class DockerEvent:
    at: float  # seconds since the epoch, from the event's timeNano
    action: str
    container: str
    project: str
    service: str
    signal: str


class Events:
    """`docker events` for containers, read in a thread from before the first action to the end."""

    ACTIONS = frozenset({"create", "start", "kill", "die", "stop", "destroy"})

    def __init__(self, docker: tuple[str, ...] = ("docker",)) -> None:
        # `docker` is the CLI to ask, e.g. ("docker", "exec", ENGINE, "docker") for a nested engine.
        self._process = subprocess.Popen(
            [*docker, "events", "--format", "{{json .}}", "--filter", "type=container"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._events: list[DockerEvent] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        time.sleep(0.5)  # the subscription is live before anything happens

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            action = str(raw.get("Action", ""))
            if action not in self.ACTIONS:
                continue
            attributes = (raw.get("Actor") or {}).get("Attributes") or {}
            event = DockerEvent(
                at=int(raw["timeNano"]) / 1e9,
                action=action,
                container=str((raw.get("Actor") or {}).get("ID", "")),
                project=str(attributes.get("com.docker.compose.project", "")),
                service=str(attributes.get("com.docker.compose.service", "")),
                signal=str(attributes.get("signal", "")),
            )
            with self._lock:
                self._events.append(event)

    def find(
        self, project: str, action: str, service: str = "", container: str = "", after: float = 0.0
    ) -> list[DockerEvent]:
        with self._lock:
            return [
                e
                for e in self._events
                if e.project == project
                and e.action == action
                and e.at >= after
                and (not service or e.service == service)
                and (not container or e.container == container)
            ]

    def wait(self, project: str, action: str, timeout: float = 15.0, **match: Any) -> DockerEvent:
        found = wait_until(
            lambda: next(iter(self.find(project, action, **match)), None), time.time() + timeout
        )
        if found is None:
            raise BenchError(f"no `{action}` event for {project} {match} within {timeout}s")
        return found

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()


@dataclasses.dataclass(frozen=True)
class Answer:
    sent: float  # wall clock, seconds since the epoch (the clock Docker's timeNano uses)
    done: float
    status: int
    body: str
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error) or not 200 <= self.status < 300


class Load:
    """Keep-alive clients sending GETs through the proxy, bounded in count and time.

    Each answer is kept with its wall-clock times and the answering hostname.
    Like curl and urllib3, a client retries once on a fresh connection when a
    reused keep-alive connection turns out to be closed before any answer
    (nginx closes idle keep-alive connections on reload): such retries are
    counted apart and are not errors. Any other failure, and any non-2xx, is.
    """

    def __init__(
        self, port: int, path: str, clients: int = 4, max_requests: int = 60_000, max_seconds: float = 240
    ):
        self.port = port
        self.path = path
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.answers: list[Answer] = []
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.stale_retries = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _running(self) -> bool:
        return (
            not self._stop.is_set()
            and time.monotonic() < self.deadline
            and len(self.answers) < self.max_requests
        )

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        reused = False
        while self._running():
            sent = time.time()
            try:
                answer = self._once(connection, sent)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                connection.close()
                if reused:
                    with self._lock:
                        self.stale_retries += 1
                    try:
                        answer = self._once(connection, sent)
                    except (OSError, http.client.HTTPException) as again:
                        connection.close()
                        answer = Answer(sent, time.time(), 0, "", type(again).__name__)
                else:
                    answer = Answer(sent, time.time(), 0, "", type(error).__name__)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                answer = Answer(sent, time.time(), 0, "", type(error).__name__)
            reused = connection.sock is not None
            with self._lock:
                self.answers.append(answer)
                if answer.status == 200:
                    self.first.setdefault(answer.body, answer.done)
                    self.last[answer.body] = answer.done
        connection.close()

    def _once(self, connection: http.client.HTTPConnection, sent: float) -> Answer:
        connection.request("GET", self.path)
        response = connection.getresponse()
        body = response.read().decode(errors="replace").strip()
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
        return Answer(sent, time.time(), response.status, body if response.status == 200 else "")

    def first_from(self, host: str) -> float | None:
        with self._lock:
            return self.first.get(host)

    def last_from(self, host: str) -> float | None:
        with self._lock:
            return self.last.get(host)

    def hosts_since(self, since: float) -> set[str]:
        with self._lock:
            return {a.body for a in self.answers if a.status == 200 and a.done >= since}

    def slow(self, seconds: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.done - a.sent > seconds]

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
        """Counts for the report: requests, errors by kind, retries, the slowest request.

        A window (by send time) selects answers; stale retries are those of the whole load.
        """
        with self._lock:
            answers = [a for a in self.answers if since <= a.sent < until]
            stale = self.stale_retries
        failures = [a for a in answers if a.failed]
        return {
            "requests": len(answers),
            "non_2xx": sum(1 for a in failures if not a.error),
            "connection_errors": sum(1 for a in failures if a.error),
            "stale_keepalive_retries": stale,
            "slowest_s": round(max((a.done - a.sent for a in answers), default=0.0), 3),
            "over_1s": sum(1 for a in answers if a.done - a.sent > 1.0),
            "error_examples": sorted({f"{a.status} {a.error}".strip() for a in failures})[:5],
        }


def wait_serving(port: int, path: str, expected: set[str], timeout: float = 30.0) -> None:
    """Wait until a window of requests is answered by exactly `expected`, all 200."""
    deadline = time.time() + timeout
    seen: collections.Counter[str] = collections.Counter()
    while time.time() < deadline:
        seen = collections.Counter()
        for _ in range(max(20, 4 * len(expected))):
            status, body = get(port, path)
            seen[body if status == 200 else f"status:{status}"] += 1
        if set(seen) == expected:
            return
        time.sleep(0.1)
    raise BenchError(
        f"127.0.0.1:{port}{path} was not served by exactly {sorted(expected)}; last {dict(seen)}"
    )


def cpu_seconds(container_id: str) -> float | None:
    """CPU time used so far by every process of a container, from its cgroup (v1 or v2)."""
    root = Path("/sys/fs/cgroup")
    for path, scale in (
        (root / "cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9),
        (root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage", 1e-9),
        (root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat", 1e-6),
        (root / "docker" / container_id / "cpu.stat", 1e-6),
    ):
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.name == "cpu.stat":
            fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
            return int(fields["usage_usec"]) * scale if "usage_usec" in fields else None
        return int(text.strip()) * scale
    return None


def wrk(port: int, seconds: int, path: str = "/", container: str = "") -> dict[str, Any]:
    """One wrk round; with `container`, also the CPU that container used per request."""
    before = cpu_seconds(container) if container else None
    out = run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"], timeout=seconds + 60
    ).stdout
    after = cpu_seconds(container) if container else None
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise BenchError(f"no Requests/sec in wrk's output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = int(total.group(1)) if total else 0
    return {
        "rps": float(rps.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
        "cpu_us_per_request": round((after - before) / requests * 1e6, 1)
        if before is not None and after is not None and requests
        else None,
    }
