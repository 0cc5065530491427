"""The Docker edge: find ourselves, list and inspect containers, follow events.

Only this module talks to the Docker API, and it hands the rest of the code
plain `Container`/`Proxy`/`Event` values. It uses read-only endpoints only
(GET `/containers/json`, `/containers/{id}/json`, `/events`, `/_ping`,
`/version`; in Swarm mode also `/services` and `/tasks`: swarm_source.py), so it works behind a socket proxy that allows nothing else
(tests/integration/test_privilege.py proves it).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import events as E
from .labels import COMPOSE_PROJECT, COMPOSE_SERVICE, LABEL_PREFIX, TRUE
from .model import Container, Proxy

log = logging.getLogger("watcher")
MOUNTINFO_ID_RE = re.compile(r"/containers/([0-9a-f]{64})/")
DEFAULT_SOCKET = "/var/run/docker.sock"
# The newest API version whose answers this module has been checked against.
# Never sent to an engine that is older (see SocketApi.negotiate).
NEWEST_API_VERSION = "1.45"
INSPECT_PARALLEL = 8  # inspects asked at once when at least this many containers need one (see _inspect_all)


class NotFound(Exception):
    """Our own container cannot be identified; the message says how to fix it."""


class Request:
    """The request an ApiError answered: `method` and `path_url` as on requests' PreparedRequest."""

    def __init__(self, method: str, path_url: str):
        self.method = method
        self.path_url = path_url


class ApiError(Exception):
    """An HTTP error from SocketApi; `status_code` (and `request`) as on docker-py's APIError."""

    def __init__(self, status_code: int, message: str, request: Request | None = None):
        super().__init__(f"{status_code} {message}")
        self.status_code = status_code
        self.request = request


def is_not_found(error: BaseException) -> bool:
    """A 404 from either client (docker-py's NotFound has the same status_code)."""
    return getattr(error, "status_code", None) == 404


class SocketApi:
    """The few GETs the first render needs, over the Unix socket, without docker-py.

    Importing docker-py (and requests) is the largest cost on the path from the
    container's start to nginx's first answer, which must come with the
    upstreams already rendered. The long-running
    watcher uses docker-py for everything.

    The API version is negotiated as Docker's own CLI does, never pinned: one
    unversioned `GET /_ping` (which every engine answers, whatever its API
    floor) gives the engine's `Api-Version`, and requests then use the older
    of that and NEWEST_API_VERSION, so an old engine is never asked for
    something it does not know, and a new one (Docker 29 refuses anything
    below 1.44) is not asked for a version it no longer serves. If an engine
    still calls that version too old (its floor rose above what we know),
    the engine's own version is used. The extra round trip is on a local
    socket, once per object: cheap next to the import it saves.
    """

    def __init__(self, path: str = DEFAULT_SOCKET, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self.version: str | None = None  # negotiated on first use
        self.server_version: str | None = None

    @classmethod
    def from_env(cls, timeout: float = 10.0) -> SocketApi | None:
        """A SocketApi if DOCKER_HOST is unset or a unix:// URL, else None (use docker-py)."""
        host = os.environ.get("DOCKER_HOST", "")
        if not host:
            return cls(timeout=timeout)
        if host.startswith("unix://"):
            return cls(host[len("unix://") :], timeout)
        return None

    def _request(self, target: str) -> tuple[int, dict[str, str], bytes]:
        request = f"GET {target} HTTP/1.0\r\nHost: docker\r\n\r\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.sendall(request.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status_fields = lines[0].split(" ", 2)
        if len(status_fields) < 2 or not status_fields[1].isdigit():
            raise ApiError(502, f"not an HTTP answer from {self.path}: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_fields[1]), headers, body

    def ping(self) -> None:
        """`GET /_ping` (unversioned); raises unless the engine answers OK. Records its API version."""
        status, headers, body = self._request("/_ping")
        if status != 200:
            raise ApiError(status, _message(body), Request("GET", "/_ping"))
        self.server_version = headers.get("api-version") or None

    def negotiate(self) -> str:
        """The API version to use with this engine ("" for unversioned paths: the engine's own)."""
        if self.version is None:
            self.ping()
            server = self.server_version
            self.version = older(server, NEWEST_API_VERSION) if server else ""
        return self.version

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        version = self.negotiate()
        target = f"/v{version}{path}{query}" if version else f"{path}{query}"
        status, _, body = self._request(target)
        if status == 400 and b"too old" in body and self.server_version and version != self.server_version:
            self.version = self.server_version  # the engine's floor is above what we know: use its own
            return self._get(path, params)
        if status != 200:
            raise ApiError(status, _message(body), Request("GET", target))
        return json.loads(body)

    def inspect_container(self, container: str) -> Any:
        return self._get(f"/containers/{urllib.parse.quote(container, safe='')}/json")

    def containers(self, filters: Mapping[str, Any], all: bool = False) -> Any:
        params = {"filters": json.dumps({k: [v] for k, v in filters.items()})}
        return self._get("/containers/json", {**params, "all": "1"} if all else params)

    def services(self, filters: Mapping[str, list[str]] | None = None) -> Any:
        return self._get("/services", {"filters": json.dumps(filters)} if filters else None)

    def tasks(self, filters: Mapping[str, list[str]] | None = None) -> Any:
        return self._get("/tasks", {"filters": json.dumps(filters)} if filters else None)


def older(a: str, b: str) -> str:
    """The older of two API versions such as "1.41" and "1.45" (compared as numbers, not text)."""

    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))

    return a if key(a) <= key(b) else b


def _message(body: bytes) -> str:
    """Docker's `{"message": ...}` error text, or the body as it is."""
    text = body.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    return str(data.get("message", text)) if isinstance(data, dict) else text


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
    the same label filters, applied here. The raw text on purpose: the daemon's
    filters match it exactly, whereas the model reads `Container.decoded`."""
    in_project = bool(project) and labels.get(COMPOSE_PROJECT) == project
    return in_project or (opted_in and labels.get(f"{LABEL_PREFIX}enable") in TRUE)


# Asked of the daemon, so that what events.from_api drops is never sent: exec_*
# (a health check execs every interval in every container), create, attach,
# resize, ... Values of one key are ORed; "health_status" matches
# "health_status: healthy" (the daemon matches these by prefix).
EVENT_FILTERS = {
    "type": ["container", "network"],
    "event": sorted(E.CONTAINER_ACTIONS | E.NETWORK_ACTIONS),
}


def _listed_name(summary: Mapping[str, Any]) -> str:
    """The container's own name in a `/containers/json` entry (not a legacy link's alias)."""
    names = [str(n) for n in summary.get("Names") or ()]
    own = [n for n in names if n.count("/") == 1] or names
    return own[0].lstrip("/") if own else ""


def _listed_health(status: str) -> str | None:
    """The health that `/containers/json` shows in Status ("Up 5 minutes (healthy)"), if any."""
    match = re.search(r"\((healthy|unhealthy|health: starting)\)$", status)
    if not match:
        return None
    return "starting" if match.group(1) == "health: starting" else match.group(1)


def still_valid(cached: Container, summary: Mapping[str, Any]) -> bool:
    """True if a `/containers/json` entry shows nothing that differs from the cached inspect.

    The list shows what can change while a container exists: its name, state,
    health and networks with their addresses. Labels, exposed ports, stop
    signal and timeout, and creation time are fixed when it is created. When
    the list does not show the health (a paused container), it differs.
    """
    return (
        _listed_name(summary) == cached.name
        and str(summary.get("State") or "") == cached.state
        and _listed_health(str(summary.get("Status") or "")) == cached.health
        and _networks(summary) == cached.networks
    )


class DockerSource:
    """A thin, cached view of the Docker API.

    Inspect answers are cached per container id; the watcher invalidates an
    id whenever an event names it, and each list checks every cached answer
    against what it shows (a resync is a list: see containers()).
    """

    def __init__(self, api: Any):
        self._api = api
        self._cache: dict[str, Container] = {}
        self._failing: dict[str, str] = {}  # containers whose inspect failed (logged), and their names

    @classmethod
    def from_env(cls, timeout: float = 10.0) -> DockerSource:
        """Connect with docker-py, as its from_env does (DOCKER_HOST, DOCKER_TLS_VERIFY, ...)."""
        import docker  # slow to import: only the long-running watcher pays for it

        # "auto": docker-py asks the engine's version (GET /version, unversioned)
        # and uses it, so no engine from 20.10 to 29 refuses it. 7.1 does this
        # by default; saying so keeps an older or newer docker-py from pinning.
        return cls(docker.from_env(version="auto", timeout=timeout).api)

    @classmethod
    def quick(cls, timeout: float = 10.0) -> DockerSource:
        """The fastest way to list once: the Unix socket directly when possible,
        else docker-py (tcp://, TLS) with the same per-request timeout."""
        api = SocketApi.from_env(timeout)
        return cls(api) if api is not None else cls.from_env(timeout)

    @property
    def api(self) -> Any:
        """The client underneath (docker-py's APIClient or SocketApi)."""
        return self._api

    def ping(self) -> None:
        self._api.ping()

    @property
    def api_version(self) -> str | None:
        """The API version in use (docker-py's, or the one SocketApi negotiated), for the status."""
        version = getattr(self._api, "api_version", None) or getattr(self._api, "version", None)
        return version if isinstance(version, str) else None

    def find_self(self, override: str = "", mountinfo: Path = Path("/proc/self/mountinfo")) -> Proxy:
        """Our own container, from the override, mountinfo or $HOSTNAME, in that order."""
        return proxy_from_inspect(self.find_own(override, mountinfo))

    def find_own(self, override: str = "", mountinfo: Path = Path("/proc/self/mountinfo")) -> Mapping[str, Any]:
        """Docker's inspect of our own container (see find_self)."""
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
                data: Mapping[str, Any] = self._api.inspect_container(candidate)
                return data
            except Exception as error:
                if not is_not_found(error):
                    raise
        raise NotFound(
            f"cannot identify the proxy's own container (tried {', '.join(filter(None, candidates)) or 'nothing'}); "
            "set DYNAMIC_NGINX_CONTAINER to its name or id"
        )

    def containers(self, project: str, opted_in: bool = False) -> list[Container]:
        """The running (or paused) containers of a compose project, inspected;
        with opted_in, also those anywhere labelled `dynamic-nginx.enable=true`.

        A cached inspect is used again only while the list shows the same name,
        state, health and network addresses (`still_valid`); everything else an
        inspect gives cannot change while a container exists. So a resync costs
        one list and an inspect of each container that changed, not one of each
        container: on a host with hundreds, a kill does not wait behind it.
        A container that cannot be inspected is left out (see _inspect).
        """
        listed = self._api.containers(filters={"label": f"{COMPOSE_PROJECT}={project}"}) if project else []
        if opted_in:
            for value in sorted(TRUE):
                listed += self._api.containers(filters={"label": f"{LABEL_PREFIX}enable={value}"})
        unique: dict[str, Mapping[str, Any]] = {}
        for summary in listed:
            unique.setdefault(summary["Id"], summary)  # an opted-in container of the project is listed twice
        stale = [(i, s) for i, s in unique.items() if i not in self._cache or not still_valid(self._cache[i], s)]
        for container_id, _ in stale:
            self.forget(container_id)
        for container_id, inspected in self._inspect_all([(i, _listed_name(s)) for i, s in stale]):
            if inspected is not None:
                self._cache[container_id] = inspected
        for gone in set(self._failing) - unique.keys():
            del self._failing[gone]
        return [self._cache[i] for i in unique if i in self._cache]

    def _inspect_all(self, wanted: list[tuple[str, str]]) -> list[tuple[str, Container | None]]:
        """(id, _inspect's answer) for each (id, name), in order.

        Many at once (a start among hundreds of running containers, a
        reconnect) are asked INSPECT_PARALLEL at a time: each inspect is a
        round trip that mostly waits on the daemon, and one at a time
        1,000 of them took a minute. A few are asked one after the other.
        The first error that _inspect raises (Docker lost, access refused)
        is raised here once the calls under way have ended; the rest are
        not asked.
        """
        if len(wanted) < INSPECT_PARALLEL:
            return [(container_id, self._inspect(container_id, name)) for container_id, name in wanted]
        import concurrent.futures  # here, not at the top: the start-up render rarely needs it

        pool = concurrent.futures.ThreadPoolExecutor(INSPECT_PARALLEL, thread_name_prefix="inspect")
        try:
            futures = [pool.submit(self._inspect, container_id, name) for container_id, name in wanted]
            answers = [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after an error, the ones not yet asked never are
        return [(container_id, answer) for (container_id, _), answer in zip(wanted, answers, strict=True)]

    def services(self, project: str) -> set[str]:
        """The services of a compose project with any container, running or not, from one list.

        `compose up` creates every service's containers before it starts any, and
        a stopped service keeps its containers: each such service owns its
        upstream before its first start and while it is stopped.
        """
        if not project:
            return set()
        listed = self._api.containers(filters={"label": f"{COMPOSE_PROJECT}={project}"}, all=True)
        return {str(s) for s in ((c.get("Labels") or {}).get(COMPOSE_SERVICE) for c in listed) if s}

    def _inspect(self, container_id: str, name: str = "") -> Container | None:
        """The container inspected; None if it is gone, or if Docker answers
        its inspect with an error: that one container is left out (one line
        while it lasts) and every other keeps being served.

        Only an HTTP error about the container is skipped; a refused access
        (401, 403) or a lost connection raises, as for any call: the watcher
        reconnects and the files stay as they are.
        """
        try:
            found = container_from_inspect(self._api.inspect_container(container_id))
        except Exception as error:
            status = getattr(error, "status_code", None)
            if status == 404:
                self._failing.pop(container_id, None)
                return None  # removed since it was listed
            if not isinstance(status, int) or status in (401, 403):
                raise
            if container_id not in self._failing:
                log.error(
                    "cannot inspect container %s: %s; it is left out of its upstreams until Docker answers",
                    name or container_id[:12],
                    " ".join(str(error).split()),
                )
            self._failing[container_id] = name
            return None
        if self._failing.pop(container_id, None) is not None:
            log.info("container %s can be inspected again", found.name)
        return found

    def refresh(
        self, listed: Iterable[Container], ids: Collection[str], project: str, opted_in: bool = False
    ) -> list[Container]:
        """`listed` (an earlier answer of containers()) with only the named containers
        inspected again: one call each instead of a list and the proxy's inspect.

        What a list would do with each is applied here: a container that is gone,
        no longer running or paused, or outside the project (and not opted in) drops out.
        """
        listed = list(listed)
        names = {c.id: c.name for c in listed}
        kept = [c for c in listed if c.id not in ids]
        for container_id in sorted(ids):
            self.forget(container_id)
            found = self._inspect(container_id, names.get(container_id, ""))
            if found is None:
                continue
            if found.state in LISTED_STATES and is_listed(found.labels, project, opted_in):
                self._cache[container_id] = found
                kept.append(found)
        return kept

    def inspect(self, reference: str) -> Container | None:
        """A container by name or id, whatever its project or state (for `explain`); None if Docker knows none."""
        try:
            return container_from_inspect(self._api.inspect_container(reference))
        except Exception as error:
            if is_not_found(error):
                return None
            raise

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
        stream = self._api.events(decode=True, filters=EVENT_FILTERS)
        _raise_refused(getattr(stream, "_response", None))
        return EventStream(stream)


def _raise_refused(response: Any) -> None:
    """Raise docker-py's APIError if the event stream was answered with an error.

    docker-py raises it only once the stream is read, and its stream turns
    it (an OSError, as every requests error is) into a plain end: a socket
    proxy refusing /events would look like a daemon restart, retried for ever
    without a word about the refusal.
    """
    if response is None or getattr(response, "status_code", 200) < 400:
        return
    from docker.errors import create_api_error_from_http_exception

    try:
        response.raise_for_status()
    except Exception as error:  # requests' HTTPError, the only thing it raises
        create_api_error_from_http_exception(error)  # raises APIError (or its NotFound, ...)


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
