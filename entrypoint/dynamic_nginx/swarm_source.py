"""The Swarm edge: the tasks of the proxy's stack, as the `Container` values the model takes.

On a Swarm the members of an upstream are a service's tasks, spread over
nodes this engine cannot inspect, and Docker sends no task events (only
service and node events, and only on managers). So this edge asks the
manager: `GET /services` for the stack's services and their `deploy.labels`,
`GET /tasks` for their tasks, and turns each running task into a
`Container` whose labels say what compose would have (project = the stack,
service = the name without the stack's prefix, number = the slot), so every
model rule, upstream feature and error line is the compose one. A poll of
`GET /tasks` stands in for the missing task events (see SwarmStream).

Addresses come from the overlay networks the proxy's own task is attached
to, matched by network id (the ingress network never: it only carries
published ports). A service labelled `dynamic-nginx.address=vip` is one
member, its virtual IP, instead of one per task.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import events as E
from . import labels as L
from .docker_source import DockerSource, EventStream, NotFound, container_from_inspect, sortable_time
from .model import Container, Proxy

log = logging.getLogger("watcher")

STACK = "com.docker.stack.namespace"
TASK_ID = "com.docker.swarm.task.id"
SERVICE_ID = "com.docker.swarm.service.id"
# How often the tasks are asked for: the stand-in for task events. One small
# GET on the manager's socket; a new task is served at most this much after
# Swarm reports it running (plus the rebuild and reload).
POLL_INTERVAL = 0.3
# While Swarm is converging (the few seconds after a service or node event or
# a change of the tasks: a scale, an update, a drain) it is polled faster, so
# a task is seen sooner when it matters; at rest the cost stays one GET per
# POLL_INTERVAL.
POLL_BUSY = 0.1
BUSY_FOR = 5.0
# A poll's answer is the list that follows it when it is this fresh.
REUSE_POLL = 0.1
# Docker's own service and node events, which come at once: a scale, an
# update or a drain starts with one of them, before any task changes.
EVENT_FILTERS = {"type": ["service", "node"]}
MODES = ("auto", "compose", "swarm")
NOT_A_MANAGER = (
    "the proxy runs as a Swarm task on a node that is not a manager, and only managers can list "
    "services and tasks; pin it to managers (deploy.placement.constraints: [node.role == manager]) "
    "or give it a manager's API (DOCKER_HOST)"
)


def _task_state(task: Mapping[str, Any]) -> tuple[str, str]:
    return str((task.get("Status") or {}).get("State") or ""), str(task.get("DesiredState") or "")


def _attachments(task_or_service: Mapping[str, Any]) -> Iterator[tuple[str, bool, list[str]]]:
    """(network id, is ingress, addresses) of each network a task is attached to."""
    for attachment in task_or_service.get("NetworksAttachments") or ():
        network = attachment.get("Network") or {}
        ingress = bool((network.get("Spec") or {}).get("Ingress"))
        yield str(network.get("ID") or ""), ingress, [str(a) for a in attachment.get("Addresses") or ()]


def _ipv4(cidr: str) -> str:
    address = cidr.partition("/")[0]
    return address if address.count(".") == 3 else ""


def _addresses(pairs: Iterable[tuple[str, list[str]]], shared: Mapping[str, str]) -> dict[str, str]:
    """Network name -> IPv4 address, for the networks (by id) the proxy shares; first IPv4 of each."""
    found: dict[str, str] = {}
    for network_id, addresses in pairs:
        name = shared.get(network_id)
        if name is not None:
            found[name] = next(filter(None, map(_ipv4, addresses)), "")
    return found


@dataclasses.dataclass(frozen=True)
class Service:
    """One Swarm service as the model needs it: its name in the stack and the labels it is served by."""

    id: str
    name: str  # the full name, `<stack>_<service>`
    labels: Mapping[str, str]  # deploy.labels, plus the compose labels this edge derives
    ports: tuple[int, ...]  # the target ports it publishes: its EXPOSE, as far as Swarm knows
    stop_signal: str
    stop_timeout: float | None
    vips: Mapping[str, str]  # network id -> virtual IP (CIDR)

    @property
    def vip_mode(self) -> bool:
        return self.labels.get(L.LABEL_PREFIX + "address") == "vip"


def service_from_api(data: Mapping[str, Any]) -> Service:
    """Convert one `GET /services` entry. Labels stay untrusted text: the model validates them."""
    spec = data.get("Spec") or {}
    raw = {str(k): str(v) for k, v in (spec.get("Labels") or {}).items()}
    name = str(spec.get("Name") or "")
    stack = raw.get(STACK, "")
    short = name[len(stack) + 1 :] if stack and name.startswith(stack + "_") else name
    labels = {**raw, L.COMPOSE_PROJECT: stack, L.COMPOSE_SERVICE: short}
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    grace = container.get("StopGracePeriod")
    endpoint = data.get("Endpoint") or {}
    ports = sorted(
        {int(p["TargetPort"]) for p in (endpoint.get("Ports") or ()) if p.get("Protocol", "tcp") == "tcp"}
        - {0}  # a published port without a target is not one
    )
    return Service(
        id=str(data.get("ID") or ""),
        name=name,
        labels=labels,
        ports=tuple(ports),
        stop_signal=str(container.get("StopSignal") or ""),
        stop_timeout=grace / 1e9 if isinstance(grace, int) and grace >= 0 else None,
        vips={str(v.get("NetworkID") or ""): str(v.get("Addr") or "") for v in endpoint.get("VirtualIPs") or ()},
    )


def task_container(task: Mapping[str, Any], service: Service, shared: Mapping[str, str]) -> Container | None:
    """A task as a Container, or None if it is not (or no longer) to be served at all.

    Only tasks Swarm wants running count: one whose desired state is
    `shutdown` (scaled away, replaced by a rolling update, on a drained node)
    leaves at once, before Swarm stops its container. A task still `starting`
    (Swarm holds it there until its health check passes) is a container whose
    health is starting, so it is excluded and explained as in compose.
    """
    state, desired = _task_state(task)
    if desired != "running" or state not in ("starting", "running"):
        return None
    slot = task.get("Slot") or 0
    task_id = str(task.get("ID") or "")
    node = str(task.get("NodeID") or "")
    labels = {**service.labels, L.COMPOSE_NUMBER: str(slot)} if slot else dict(service.labels)
    return Container(
        id=task_id,
        name=f"{service.name}.{slot or node}.{task_id}",
        labels=labels,
        networks=_addresses(((i, a) for i, ingress, a in _attachments(task) if not ingress), shared),
        exposed_ports=service.ports,
        state="running",
        health="starting" if state == "starting" else None,
        stop_signal=service.stop_signal,
        created=sortable_time(str(task.get("CreatedAt") or "")),
        stop_timeout=service.stop_timeout,
    )


def vip_container(service: Service, shared: Mapping[str, str]) -> Container:
    """A service in `vip` mode as one member: its virtual IP on each shared network.

    Swarm's VIP balances over the healthy tasks itself (IPVS), so nginx's
    balancing, weights and per-task health are not used for it.
    """
    return Container(
        id=service.id,
        name=service.name,
        labels=service.labels,
        networks=_addresses(((i, [a]) for i, a in service.vips.items()), shared),
        exposed_ports=service.ports,
        stop_signal=service.stop_signal,
        stop_timeout=service.stop_timeout,
    )


def members(
    services: Iterable[Service], tasks: Iterable[Mapping[str, Any]], shared: Mapping[str, str], skip: str = ""
) -> list[Container]:
    """Every servable task of these services (or the service itself in vip mode), but those of `skip`."""
    by_id = {s.id: s for s in services if s.id != skip}
    found = [vip_container(s, shared) for s in by_id.values() if s.vip_mode]
    for task in tasks:
        service = by_id.get(str(task.get("ServiceID") or ""))
        if service is not None and not service.vip_mode:
            container = task_container(task, service, shared)
            if container is not None:
                found.append(container)
    return found


def fingerprint(tasks: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str, str, str]]:
    """What of the tasks can change the model: id, state, desired state and node."""
    return frozenset((str(t.get("ID")), *_task_state(t), str(t.get("NodeID") or "")) for t in tasks)


def is_task(data: Mapping[str, Any]) -> bool:
    """True if this container inspect is of a Swarm task's container."""
    return bool(((data.get("Config") or {}).get("Labels") or {}).get(TASK_ID))


class SwarmSource(DockerSource):
    """The Docker questions the watcher asks, answered from a Swarm manager.

    The proxy is still found as a container (its own, on this manager); its
    project is its stack, and its networks those it has besides ingress.
    Tasks cannot be inspected one by one, so every question is a list.
    """

    def __init__(self, api: Any, poll_interval: float = POLL_INTERVAL):
        super().__init__(api)
        self.poll_interval = poll_interval
        self._shared: dict[str, str] = {}  # network id -> name: the proxy's networks, ingress excluded
        self._own_service = ""
        self._stack = ""
        self._watched: frozenset[str] = frozenset()  # the ids of the services the last list served from
        self._polled: tuple[float, list[Mapping[str, Any]]] | None = None  # (when, answer) of the last poll
        self._listed: tuple[str, list[Service]] | None = None  # the services of the last `containers`

    def proxy(self, proxy_id: str) -> Proxy:
        """Our own task's container: the stack it belongs to and the networks it is on, by id."""
        return self._proxy_from(self._api.inspect_container(proxy_id))

    def find_self(self, override: str = "", mountinfo: Path = Path("/proc/self/mountinfo")) -> Proxy:
        return self._proxy_from(self.find_own(override, mountinfo))

    def _proxy_from(self, data: Mapping[str, Any]) -> Proxy:
        labels = (data.get("Config") or {}).get("Labels") or {}
        own = container_from_inspect(data)
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        self._shared = {
            str(n.get("NetworkID") or ""): str(name) for name, n in networks.items() if n and name != "ingress"
        }
        self._own_service = str(labels.get(SERVICE_ID) or "")
        self._stack = str(labels.get(STACK) or "")
        return Proxy(id=own.id, name=own.name, project=self._stack, networks=tuple(sorted(self._shared.values())))

    def _services(self, project: str, opted_in: bool = False) -> list[Service]:
        """The stack's services (with opted_in, every service: the model keeps those that opt in)."""
        if opted_in:
            listed = self._api.services()
        elif project:
            listed = self._api.services(filters={"label": [f"{STACK}={project}"]})
        else:
            return []
        return [s for s in map(service_from_api, listed) if s.id != self._own_service]

    def _tasks(self) -> list[Mapping[str, Any]]:
        """The tasks Swarm wants running: the last poll's answer if it is fresh (the list that
        follows a change the poll saw), else a new one."""
        polled, self._polled = self._polled, None
        if polled is not None and time.monotonic() - polled[0] <= REUSE_POLL:
            return polled[1]
        return list(self._api.tasks(filters={"desired-state": ["running"]}))

    def containers(self, project: str, opted_in: bool = False) -> list[Container]:
        """The members to serve: the running tasks of the stack's services (see `members`)."""
        services = self._services(project, opted_in)
        self._listed = (project, services)
        self._watched = frozenset(s.id for s in services)
        tasks = self._tasks() if services else []
        ingress = {i for t in tasks for i, is_ingress, _ in _attachments(t) if is_ingress}
        shared = {i: n for i, n in self._shared.items() if i not in ingress}  # ingress renamed, too
        return members(services, tasks, shared)

    def services(self, project: str) -> set[str]:
        """The stack's services, scaled to 0 or not: each owns its upstream. (The list a
        `containers` call just made is used again: the watcher asks both in one refresh.)"""
        listed, self._listed = self._listed, None
        services = listed[1] if listed is not None and listed[0] == project else self._services(project)
        return {s.labels[L.COMPOSE_SERVICE] for s in services if s.labels.get(STACK) == project}

    def refresh(
        self, listed: Iterable[Container], ids: Collection[str], project: str, opted_in: bool = False
    ) -> list[Container]:
        return self.containers(project, opted_in)

    def inspect(self, reference: str) -> Container | None:
        """A running task by id or name (or `<service>.<slot>`), for `explain`; else a container here."""
        for container in self.containers(self._stack, opted_in=True):
            if reference in (container.id, container.name) or container.name.startswith(reference + "."):
                return container
        return super().inspect(reference)

    def polled(self) -> frozenset[tuple[str, str, str, str]]:
        """The fingerprint of the tasks of the services the last list served from."""
        tasks = list(self._api.tasks(filters={"desired-state": ["running"]}))
        self._polled = (time.monotonic(), tasks)
        watched = self._watched
        return fingerprint(t for t in tasks if str(t.get("ServiceID") or "") in watched)

    def subscribe(self) -> SwarmStream:
        """Service and node events, now, and the poll of the tasks that stands in for task events."""
        stream = self._api.events(decode=True, filters=EVENT_FILTERS)
        return SwarmStream(stream, self.polled, self.poll_interval)


TASKS_CHANGED = E.Event("tasks", "changed", "", {})
_ENDED = object()


class SwarmStream(EventStream):
    """Docker's service and node events, and a `tasks` event whenever a poll of the tasks differs.

    Polls every `interval` at rest, every POLL_BUSY for BUSY_FOR seconds
    after an event or a change.

    Ends (like a container event stream at a daemon restart) when Docker's
    stream ends or a poll fails: the watcher reconnects and lists again.
    """

    def __init__(self, stream: Any, poll: Callable[[], frozenset[tuple[str, str, str, str]]], interval: float):
        super().__init__(stream)
        self._poll = poll
        self._interval = interval
        self._queue: queue.Queue[object] = queue.Queue()
        self._closed = threading.Event()
        self._last: frozenset[tuple[str, str, str, str]] | None = None

    def _read(self) -> None:
        try:
            for raw in self._stream:
                event = E.from_api(raw)
                if event is not None:
                    self._queue.put(event)
        except Exception as error:  # the stream's end, however it ends, is the session's end
            log.debug("swarm event stream ended: %s", error)
        self._queue.put(_ENDED)

    def __iter__(self) -> Iterator[E.Event]:
        reader = threading.Thread(target=self._read, name="swarm-events", daemon=True)
        reader.start()
        next_poll = busy_until = time.monotonic()
        try:
            while not self._closed.is_set():
                try:
                    item = self._queue.get(timeout=max(0.0, next_poll - time.monotonic()))
                except queue.Empty:
                    item = None
                if item is _ENDED:
                    return
                now = time.monotonic()
                if isinstance(item, E.Event):
                    busy_until = now + BUSY_FOR
                    next_poll = min(next_poll, now + POLL_BUSY)
                    yield item
                    continue
                seen = self._poll()
                changed = self._last is not None and seen != self._last
                self._last = seen
                if changed:
                    busy_until = now + BUSY_FOR
                next_poll = now + (min(POLL_BUSY, self._interval) if now < busy_until else self._interval)
                if changed:
                    yield TASKS_CHANGED
        finally:
            self._closed.set()
            reader.join(1.0)

    def close(self) -> None:
        self._closed.set()
        self._stream.close()


def for_mode(source: DockerSource, mode: str, override: str = "") -> DockerSource:
    """The source for DYNAMIC_NGINX_MODE: `auto` is Swarm's when the proxy is a Swarm task.

    A task on a node that cannot list services (a worker) is told so in one
    line with the fix, in both modes: it has nothing to serve from otherwise.
    """
    if mode == "compose" or (mode == "auto" and not is_task(source.find_own(override))):
        return source
    swarm = SwarmSource(source.api)
    try:
        swarm.api.services(filters={"label": [f"{STACK}=-"]})  # answers [] on a manager
    except Exception as error:
        if getattr(error, "status_code", None) == 503:
            raise NotFound(NOT_A_MANAGER) from None
        raise
    return swarm
