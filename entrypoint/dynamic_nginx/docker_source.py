"""The Docker edge: find ourselves, list and inspect containers, follow events.

Only this module talks to the Docker API, and it hands the rest of the code
plain `Container`/`Proxy`/`Event` values. It uses read-only endpoints only
(`/containers/json`, `/containers/{id}/json`, `/events`, `/_ping`), so it
works behind a socket proxy that allows nothing else.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import events as E
from .labels import COMPOSE_PROJECT, LABEL_PREFIX, TRUE
from .model import Container, Proxy

MOUNTINFO_ID_RE = re.compile(r"/containers/([0-9a-f]{64})/")
DEFAULT_SOCKET = "/var/run/docker.sock"
API_VERSION = "1.41"


class NotFound(Exception):
    """Our own container cannot be identified; the message says how to fix it."""


class ApiError(Exception):
    """An HTTP error from SocketApi; `status_code` as on docker-py's APIError."""

    def __init__(self, status_code: int, message: str):
        super().__init__(f"{status_code} {message}")
        self.status_code = status_code


def is_not_found(error: BaseException) -> bool:
    """A 404 from either client (docker-py's NotFound has the same status_code)."""
    return getattr(error, "status_code", None) == 404


class SocketApi:
    """Just the two GETs the first render needs, over the Unix socket, without docker-py.

    Importing docker-py (and requests) costs about 0.2 s of CPU, which is most
    of the start-up budget: nginx must answer within half a second of the
    container starting, with the upstreams already rendered. The long-running
    watcher uses docker-py for everything.
    """

    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout

    @classmethod
    def from_env(cls) -> SocketApi | None:
        """A SocketApi if DOCKER_HOST is unset or a unix:// URL, else None (use docker-py)."""
        host = os.environ.get("DOCKER_HOST", "")
        if not host:
            return cls()
        if host.startswith("unix://"):
            return cls(host[len("unix://") :])
        return None

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        request = f"GET /v{API_VERSION}{path}{query} HTTP/1.0\r\nHost: docker\r\n\r\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(request.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            raise ApiError(status, body.decode(errors="replace").strip())
        return json.loads(body)

    def inspect_container(self, container: str) -> Any:
        return self._get(f"/containers/{urllib.parse.quote(container, safe='')}/json")

    def containers(self, filters: Mapping[str, Any]) -> Any:
        return self._get("/containers/json", {"filters": json.dumps({k: [v] for k, v in filters.items()})})


def own_id_from_mountinfo(text: str) -> str | None:
    """The container id in the source of the /etc/hostname (or hosts, resolv.conf) bind mount.

    Works on cgroup v1 and v2 alike, unlike guessing from /proc/self/cgroup.
    """
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
            match = MOUNTINFO_ID_RE.search(fields[3])
            if match:
                return match.group(1)
    return None


def _tcp_ports(exposed: Mapping[str, Any] | None) -> tuple[int, ...]:
    ports = []
    for key in exposed or {}:
        number, _, proto = key.partition("/")
        if proto in ("", "tcp") and number.isdigit():
            ports.append(int(number))
    return tuple(sorted(ports))


def _networks(data: Mapping[str, Any]) -> dict[str, str]:
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    return {str(name): str((net or {}).get("IPAddress") or "") for name, net in networks.items()}


def container_from_inspect(data: Mapping[str, Any]) -> Container:
    """Convert a `/containers/{id}/json` answer into a Container."""
    config = data.get("Config") or {}
    state = data.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    return Container(
        id=str(data.get("Id", "")),
        name=str(data.get("Name", "")).lstrip("/"),
        labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
        networks=_networks(data),
        exposed_ports=_tcp_ports(config.get("ExposedPorts")),
        state=str(state.get("Status", "")),
        health=str(health) if health else None,
        stop_signal=str(config.get("StopSignal") or ""),
        created=sortable_time(str(data.get("Created") or "")),
        stop_timeout=_stop_timeout(config.get("StopTimeout")),
    )


def _stop_timeout(value: Any) -> float | None:
    """Config.StopTimeout in seconds; None when unset or not a whole number of seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return float(value)


def sortable_time(text: str) -> str:
    """Docker's RFC 3339 time with the fraction padded to 9 digits, so strings sort by time.

    Docker trims trailing zeros of the nanoseconds, which breaks plain string order.
    """
    match = re.fullmatch(r"([0-9T:-]+)(?:\.([0-9]+))?(Z|[+-][0-9:]+)?", text)
    if not match:
        return text
    return f"{match.group(1)}.{(match.group(2) or '').ljust(9, '0')}{match.group(3) or ''}"


def proxy_from_inspect(data: Mapping[str, Any]) -> Proxy:
    own = container_from_inspect(data)
    return Proxy(
        id=own.id,
        name=own.name,
        project=own.project,
        networks=tuple(sorted(own.networks)),
    )


# What GET /containers/json returns without all=1: paused and restarting containers are "running" to it.
LISTED_STATES = frozenset({"running", "paused", "restarting"})


def is_listed(labels: Mapping[str, str], project: str, opted_in: bool) -> bool:
    """True if containers() would list a running container with these labels:
    the same label filters, applied here."""
    in_project = bool(project) and labels.get(COMPOSE_PROJECT) == project
    return in_project or (opted_in and labels.get(f"{LABEL_PREFIX}enable") in TRUE)


class DockerSource:
    """A thin, cached view of the Docker API.

    Inspect answers are cached per container id; the watcher invalidates an
    id whenever an event names it, and clears everything on a resync.
    """

    def __init__(self, api: Any):
        self._api = api
        self._cache: dict[str, Container] = {}

    @classmethod
    def from_env(cls) -> DockerSource:
        """Connect with docker-py, as its from_env does (DOCKER_HOST, DOCKER_TLS_VERIFY, ...)."""
        import docker  # slow to import: only the long-running watcher pays for it

        return cls(docker.from_env(timeout=10).api)

    @classmethod
    def quick(cls) -> DockerSource:
        """The fastest way to list once: the Unix socket directly when possible."""
        api = SocketApi.from_env()
        return cls(api) if api is not None else cls.from_env()

    def ping(self) -> None:
        self._api.ping()

    def find_self(self, override: str = "", mountinfo: Path = Path("/proc/self/mountinfo")) -> Proxy:
        """Our own container, from the override, mountinfo or $HOSTNAME, in that order."""
        candidates = [override] if override else []
        try:
            found = own_id_from_mountinfo(mountinfo.read_text())
        except OSError:
            found = None
        if found and not override:
            candidates.append(found)
        if not candidates:
            candidates.append(_hostname())
        for candidate in filter(None, candidates):
            try:
                return proxy_from_inspect(self._api.inspect_container(candidate))
            except Exception as error:
                if not is_not_found(error):
                    raise
        raise NotFound(
            f"cannot identify the proxy's own container (tried {', '.join(filter(None, candidates)) or 'nothing'}); "
            "set DYNAMIC_NGINX_CONTAINER to its name or id"
        )

    def containers(self, project: str, opted_in: bool = False) -> list[Container]:
        """The running (or paused) containers of a compose project, inspected;
        with opted_in, also those anywhere labelled `dynamic-nginx.enable=true`."""
        listed = self._api.containers(filters={"label": f"{COMPOSE_PROJECT}={project}"}) if project else []
        if opted_in:
            for value in sorted(TRUE):
                listed += self._api.containers(filters={"label": f"{LABEL_PREFIX}enable={value}"})
        found = []
        seen = set()
        for summary in listed:
            if summary["Id"] in seen:
                continue
            seen.add(summary["Id"])
            container_id = summary["Id"]
            if container_id not in self._cache:
                try:
                    self._cache[container_id] = container_from_inspect(
                        self._api.inspect_container(container_id)
                    )
                except Exception as error:
                    if is_not_found(error):
                        continue  # removed between list and inspect
                    raise
            found.append(self._cache[container_id])
        return found

    def refresh(
        self, listed: Iterable[Container], ids: Collection[str], project: str, opted_in: bool = False
    ) -> list[Container]:
        """`listed` (an earlier answer of containers()) with only the named containers
        inspected again: one call each instead of a list and the proxy's inspect.

        What a list would do with each is applied here: a container that is gone,
        no longer running or paused, or outside the project (and not opted in) drops out.
        """
        kept = [c for c in listed if c.id not in ids]
        for container_id in sorted(ids):
            self.forget(container_id)
            try:
                found = container_from_inspect(self._api.inspect_container(container_id))
            except Exception as error:
                if is_not_found(error):
                    continue
                raise
            if found.state in LISTED_STATES and is_listed(found.labels, project, opted_in):
                self._cache[container_id] = found
                kept.append(found)
        return kept

    def stop_signal(self, container_id: str) -> str:
        cached = self._cache.get(container_id)
        return cached.stop_signal if cached else ""

    def forget(self, container_id: str) -> None:
        self._cache.pop(container_id, None)

    def forget_all(self) -> None:
        self._cache.clear()

    def proxy(self, proxy_id: str) -> Proxy:
        """Re-read our own container (its networks change with connect/disconnect)."""
        return proxy_from_inspect(self._api.inspect_container(proxy_id))

    def subscribe(self) -> EventStream:
        """Subscribe to container and network events, now.

        The subscription exists when this returns, so a list made afterwards
        cannot miss a change.
        """
        return EventStream(self._api.events(decode=True, filters={"type": ["container", "network"]}))


class EventStream:
    """Relevant events until the daemon goes away; close() ends it from another thread.

    docker-py's stream simply ends (StopIteration) when the daemon restarts:
    the caller treats the end of iteration as "reconnect and resync".
    """

    def __init__(self, stream: Any):
        self._stream = stream

    def __iter__(self) -> Iterator[E.Event]:
        for raw in self._stream:
            event = E.from_api(raw)
            if event is not None:
                yield event

    def close(self) -> None:
        self._stream.close()


def _hostname() -> str:
    try:
        return Path("/etc/hostname").read_text().strip()
    except OSError:
        return ""
