"""What the benchmark measures with: Docker events and wrk, besides the integration harness's parts.

Every wait is bounded in time and every request loop in count and time;
HTTP goes only to 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The compose project, the load client, the command runner and the waits are the integration tests'
# (tests/integration/harness.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import (  # noqa: E402, F401  (the bench imports them from here)
    Load,
    Project,
    compose_command,
    free_port,
    get,
    poll,
    run,
    wait_for,
)


class BenchError(RuntimeError):
    """Something the benchmark needs did not happen (a build, a replica, a deadline)."""


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


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
        found = wait_for(
            lambda: next(iter(self.find(project, action, **match)), None),
            timeout,
            f"a `{action}` event for {project} {match}",
            interval=0.01,
        )
        assert found is not None  # wait_for returns only a truthy value
        return found

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()


def wrk(port: int, seconds: int, path: str = "/", cpu: Callable[[], float | None] | None = None) -> dict[str, Any]:
    """One wrk round; with `cpu` (the proxy's CPU seconds so far), also the CPU it used per request."""
    before = cpu() if cpu else None
    out = run(["wrk", "-t2", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"], timeout=seconds + 60).stdout
    after = cpu() if cpu else None
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
