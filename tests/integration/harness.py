"""Helpers for integration tests: real compose projects, real HTTP on 127.0.0.1.

Every wait here is bounded in time and every request loop in count, so a
broken build fails a test instead of hanging the suite.
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

IMAGE = os.environ.get("DYNAMIC_NGINX_IMAGE", "dynamic-nginx:test")
BACKEND_IMAGE = os.environ.get("DYNAMIC_NGINX_BACKEND_IMAGE", "dynamic-nginx-backend:test")
ROOT = Path(__file__).resolve().parents[2]
MEASUREMENTS = Path(os.environ.get("DYNAMIC_NGINX_MEASUREMENTS", "/tmp/dynamic-nginx-measurements.jsonl"))


# A proxy whose conf.d is a bind-mounted folder, so tests can drop files in it as a user would.
PROXY = """
version: "3.8"
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - ./conf.d:/etc/nginx/conf.d
"""
WEB = """  web:
    image: {backend}
"""
# What the README recommends: retry a refused connection elsewhere, quickly.
SITE = """
server {{
    listen 80;
    location / {{
        proxy_pass http://{upstream};
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
    }}
}}
"""

# app.upstream behind /, and /static, which needs no upstream: what serves while Docker is away.
STATIC_SITE = """
server {
    listen 80;
    location /static {
        return 200 "static\\n";
    }
    location / {
        proxy_pass http://app.upstream;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
    }
}
"""

SERVER_LINE = re.compile(r"^\s+server (\d+\.\d+\.\d+\.\d+:\d+)[ ;]", re.M)


def rendered_servers(p: Project, name: str = "dynamic-nginx-upstreams.conf") -> list[str]:
    """The `server ip:port` addresses in a generated file of a project whose conf.d is bind-mounted."""
    path = p.folder / "conf.d" / name
    return SERVER_LINE.findall(path.read_text()) if path.exists() else []


def run(args: list[str], timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, failing the test with its output if it fails."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def compose_command() -> list[str]:
    """`docker compose` (v2) where present, else Debian's `docker-compose` (v1)."""
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def record(name: str, value: object) -> None:
    """Append a measured figure for the run's summary (the test script prints them)."""
    with MEASUREMENTS.open("a") as handle:
        handle.write(json.dumps({"name": name, "value": value}) + "\n")


def poll(check: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """Call check (at least once) until it returns something truthy or timeout passes; its last value.

    For a wait whose running out is a result to report (the benchmark's "not served in time"), not a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last or time.monotonic() >= deadline:
            return last
        time.sleep(interval)


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Call check until it returns something truthy; fail naming `what` after timeout."""
    last = poll(check, timeout, interval)
    if last:
        return last
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def cgroup_cpu_seconds(container_id: str) -> float | None:
    """CPU time used so far by every process of a container (full id), from its cgroup (v1 or v2)."""
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


def get(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, str]:
    """One GET to the proxy on 127.0.0.1; (0, error) when no HTTP answer came."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    except (OSError, http.client.HTTPException) as error:
        return 0, type(error).__name__
    finally:
        connection.close()


def tally(port: int, count: int, path: str = "/") -> collections.Counter[str]:
    """`count` sequential requests; answers counted by body for 200, else by `status:N`."""
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        status, body = get(port, path)
        counts[body if status == 200 else f"status:{status}"] += 1
    return counts


class Project:
    """One compose project with a unique name, torn down by the fixture that made it."""

    def __init__(
        self,
        folder: Path,
        compose_file: str,
        files: dict[str, str] | None = None,
        port: int | None = None,
        values: dict[str, object] | None = None,
        prefix: str = "dnt",
    ):
        """compose_file is the text of a compose file, with {image}, {backend} and {port}
        filled in, and any other {field} from `values` (which may also replace image and backend),
        or the path of an existing one (then `port` is the one it publishes).
        The project's name is `prefix` and a random suffix, so leftovers show whose they are."""
        self.folder = folder
        self.name = prefix + uuid.uuid4().hex[:10]
        self.port = port or free_port()
        self.compose_bin = compose_command()
        folder.mkdir(parents=True, exist_ok=True)
        for relative, text in (files or {}).items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        # A text has lines; asking the file system about a long one fails with "File name too long".
        if "\n" not in compose_file and Path(compose_file).is_file():
            self.compose_file = Path(compose_file)
        else:
            self.compose_file = folder / "docker-compose.yml"
            fields = {"image": IMAGE, "backend": BACKEND_IMAGE, **(values or {}), "port": self.port}
            self.compose_file.write_text(compose_file.format(**fields))

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run([*self.compose_bin, "-p", self.name, "-f", str(self.compose_file), *args], timeout=timeout)

    def up(self, *services: str, build: bool = False, **scale: int) -> None:
        flags = [f"--scale={service}={n}" for service, n in scale.items()] + (["--build"] if build else [])
        self.compose("up", "-d", "--no-recreate", *flags, *services, timeout=900)

    def rss_kib(self, program: str) -> int:
        """Resident memory of one supervisord program, from /proc inside the container."""
        out = self.exec("sh", "-c", f"grep VmRSS /proc/$(supervisorctl pid {program})/status").stdout
        return int(out.split()[1])

    def ids(self, service: str, stopped: bool = False, full: bool = False) -> list[str]:
        """Short ids (= hostnames the backend answers with) of the service's running containers;
        with `full`, the whole ids (what Docker's events and cgroup paths carry)."""
        out = run(
            [
                "docker",
                "ps",
                "-q",
                "--no-trunc",
                *(["--all"] if stopped else []),
                "--filter",
                f"label=com.docker.compose.project={self.name}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ]
        ).stdout
        return sorted(line if full else line[:12] for line in out.split())

    def cpu_seconds(self, service: str = "proxy") -> float | None:
        """CPU time used so far by the service's first running container; None where its cgroup is not found."""
        ids = self.ids(service, full=True)
        return cgroup_cpu_seconds(ids[0]) if ids else None

    def proxy_id(self) -> str:
        ids = self.ids("proxy", stopped=True)
        assert len(ids) == 1, f"expected one proxy container, found {ids}"
        return ids[0]

    def logs(self, service: str = "proxy", since: float | None = None, timestamps: bool = False) -> str:
        """The container's output (the first one's, for a service of several), from wall clock `since` on;
        with `timestamps`, each line starts with Docker's RFC 3339 time."""
        flags = [*(["--since", f"{since:.3f}"] if since is not None else []), *(["-t"] if timestamps else [])]
        result = run(["docker", "logs", *flags, self.proxy_id() if service == "proxy" else self.ids(service)[0]])
        return result.stdout + result.stderr

    def reloads(self, since: float | None = None) -> int:
        """How many reloads the reloader has made (its log lines), in all or from wall clock `since` on."""
        return self.logs(since=since).count("reloader: INFO: reloaded nginx")

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["docker", "exec", self.proxy_id(), *args], check=check)

    def wait_serving(
        self, expected: Iterable[str], timeout: float = 20.0, requests: int = 30, path: str = "/"
    ) -> float:
        """Wait until a window of requests to `path` is answered by exactly `expected`; seconds waited."""
        wanted = set(expected)
        started = time.monotonic()

        def served() -> bool:
            seen = tally(self.port, max(requests, 3 * len(wanted)), path)
            return set(seen) == wanted

        wait_for(served, timeout, f"replicas {sorted(wanted)} to be served at {path}", interval=0.05)
        return time.monotonic() - started

    def down(self) -> None:
        """compose down; a project of hundreds of containers loses them a few at a time first:
        with all at once, dockerd 20.10 left the network with "active endpoints", and with 50
        at once (the CLI removes them in parallel) it wedged ("runc did not terminate")."""
        ids = run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.name}"], check=False
        ).stdout.split()
        if len(ids) > 50:
            for at in range(0, len(ids), REMOVE_AT_ONCE):
                run(["docker", "rm", "-f", "-v", *ids[at : at + REMOVE_AT_ONCE]], timeout=300, check=False)
        self.compose("down", "-v", "--remove-orphans", "-t", "3", timeout=180)


# Containers one `docker rm` removes (the CLI removes them in parallel): dockerd 20.10 on the test
# machine wedged removing 50 at once; one at a time costs about 0.06 s each.
REMOVE_AT_ONCE = 5


@dataclasses.dataclass
class Outcome:
    status: int
    body: str
    seconds: float
    error: str = ""
    at: float = dataclasses.field(default_factory=time.monotonic)  # when it ended
    sent: float = 0.0  # wall clock, seconds since the epoch (the clock of Docker's timeNano)

    @property
    def done(self) -> float:
        """Wall clock when it ended."""
        return self.sent + self.seconds

    @property
    def failed(self) -> bool:
        return bool(self.error) or not 200 <= self.status < 300


class Load:
    """Several keep-alive clients sending GETs until stopped, bounded in count and time.

    Like curl and urllib3, a client retries once on a fresh connection when a
    reused keep-alive connection turns out to be closed before any answer
    (nginx closes idle keep-alive connections when it reloads); such retries
    are counted. Any other failure is an error.
    """

    def __init__(
        self,
        port: int,
        clients: int = 4,
        path: str = "/?sleep=0.02",
        max_requests: int = 50_000,
        max_seconds: float = 180,
    ):
        self.port = port
        self.path = path
        self.clients = clients
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.outcomes: list[Outcome] = []
        self.first: dict[str, float] = {}  # body of a 200 -> wall clock of its first and last answer
        self.last: dict[str, float] = {}
        self.stale_retries = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self.deadline and len(self.outcomes) < self.max_requests

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        reused = False
        while self._running():
            started = time.monotonic()
            sent = time.time()
            try:
                outcome = self._once(connection, started)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as error:
                connection.close()
                if not reused:
                    outcome = Outcome(0, "", time.monotonic() - started, type(error).__name__)
                else:
                    with self._lock:
                        self.stale_retries += 1
                    try:
                        outcome = self._once(connection, started)
                    except (OSError, http.client.HTTPException) as again:
                        outcome = Outcome(0, "", time.monotonic() - started, type(again).__name__)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                outcome = Outcome(0, "", time.monotonic() - started, type(error).__name__)
            reused = connection.sock is not None  # the next request goes over this same connection
            outcome.sent = sent
            with self._lock:
                self.outcomes.append(outcome)
                if outcome.status == 200:
                    self.first.setdefault(outcome.body, outcome.done)
                    self.last[outcome.body] = outcome.done
        connection.close()

    def _once(self, connection: http.client.HTTPConnection, started: float) -> Outcome:
        connection.request("GET", self.path)
        response = connection.getresponse()
        body = response.read().decode(errors="replace").strip()
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
        return Outcome(response.status, body, time.monotonic() - started)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def served_by(self, since: int = 0) -> set[str]:
        return {o.body for o in self.snapshot()[since:] if o.status == 200}

    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if o.failed]

    def first_from(self, body: str) -> float | None:
        """Wall clock of the first 200 answered with `body` (a replica's hostname), if any."""
        with self._lock:
            return self.first.get(body)

    def last_from(self, body: str) -> float | None:
        with self._lock:
            return self.last.get(body)

    def hosts_since(self, since: float) -> set[str]:
        """Bodies of the 200s that ended at or after wall clock `since`."""
        with self._lock:
            return {o.body for o in self.outcomes if o.status == 200 and o.done >= since}

    def slow(self, seconds: float) -> list[Outcome]:
        return [o for o in self.snapshot() if o.seconds > seconds]

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
        """Counts for a report: requests, errors by kind, retries, the slowest request.

        A window of wall-clock send times selects the answers; stale retries are those of the whole load.
        """
        with self._lock:
            outcomes = [o for o in self.outcomes if since <= o.sent < until]
            stale = self.stale_retries
        failures = [o for o in outcomes if o.failed]
        return {
            "requests": len(outcomes),
            "non_2xx": sum(1 for o in failures if not o.error),
            "connection_errors": sum(1 for o in failures if o.error),
            "stale_keepalive_retries": stale,
            "slowest_s": round(max((o.seconds for o in outcomes), default=0.0), 3),
            "over_1s": sum(1 for o in outcomes if o.seconds > 1.0),
            "error_examples": sorted({f"{o.status} {o.error}".strip() for o in failures})[:5],
        }
