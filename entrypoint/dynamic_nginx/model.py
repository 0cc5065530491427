"""The model: containers in, upstreams out, with no I/O.

`Container` is what the Docker edge hands us (already converted from API
dicts); `build` groups the eligible ones into `Upstream`s and collects one
log line per container it had to leave out. The model is also what templates
see, so its fields are the documented template context.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from . import labels as L


@dataclasses.dataclass(frozen=True)
class Container:
    """One container as the Docker edge saw it.

    `networks` maps network name to the container's IPv4 address there;
    `state` is Docker's state ("running", "paused", ...) or "stopping" once a
    terminating signal was seen; `health` is None without a HEALTHCHECK.
    """

    id: str
    name: str
    labels: Mapping[str, str]
    networks: Mapping[str, str]
    exposed_ports: tuple[int, ...] = ()
    state: str = "running"
    health: str | None = None
    stop_signal: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def project(self) -> str:
        return self.labels.get(L.COMPOSE_PROJECT, "")

    @property
    def service(self) -> str:
        return self.labels.get(L.COMPOSE_SERVICE, "")

    @property
    def number(self) -> int:
        raw = self.labels.get(L.COMPOSE_NUMBER, "")
        return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else 0


@dataclasses.dataclass(frozen=True)
class Proxy:
    """The container this process runs in: its compose project and networks."""

    id: str
    name: str
    project: str
    networks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Server:
    """One `server` line: a container's address on the network it shares with us."""

    address: str
    port: int
    network: str
    container: Container


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One `upstream` block. No servers means nginx answers 503 for it."""

    name: str
    servers: tuple[Server, ...]


@dataclasses.dataclass(frozen=True)
class Model:
    """Everything a template may use, plus the lines to log about left-out containers."""

    upstreams: tuple[Upstream, ...]
    containers: tuple[Container, ...]
    proxy: Proxy
    problems: tuple[str, ...] = ()


REFERENCE_RE = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9][A-Za-z0-9_.-]*\.upstream)(?![A-Za-z0-9_.-])", re.I)


def referenced_upstreams(texts: Iterable[str]) -> set[str]:
    """Every `<name>.upstream` mentioned in nginx config texts, lower-cased.

    These must exist even when no container serves them, or nginx would refuse
    the whole configuration ("host not found in upstream").
    """
    found = set()
    for text in texts:
        for match in REFERENCE_RE.finditer(text):
            name = match.group(1).lower()
            if L.is_name(name):
                found.add(name)
    return found


class Excluded(Exception):
    """A container cannot be served; str() is the log line saying why and the fix."""


def is_live(container: Container) -> bool:
    """Running, not on its way out, and healthy if it has a health check."""
    return container.state == "running" and container.health in (None, "healthy")


def in_scope(container: Container, proxy: Proxy) -> bool:
    """Same compose project as the proxy, not a one-off `run`, and not the proxy itself."""
    return (
        container.id != proxy.id
        and bool(proxy.project)
        and container.project == proxy.project
        and container.labels.get(L.COMPOSE_ONEOFF, "False") != "True"
        and bool(container.service)
    )


def choose_network(container: Container, proxy: Proxy) -> tuple[str, str]:
    """The network and IPv4 address by which the proxy reaches the container.

    When several networks are shared, the first by name wins, so the choice is
    the same at every rebuild (map order from the API is not).
    """
    shared = sorted(n for n in container.networks if n in proxy.networks)
    for network in shared:
        address = container.networks[network]
        if address:
            return network, address
    if shared:
        raise Excluded(
            f"container {container.name}: no IPv4 address on shared network(s) "
            f"{', '.join(shared)}; left out"
        )
    raise Excluded(
        f"container {container.name}: shares no network with the proxy "
        f"(it is on {', '.join(sorted(container.networks)) or 'no network'}; the proxy on "
        f"{', '.join(proxy.networks) or 'no network'}); left out. "
        "Put both on one network."
    )


def choose_port(container: Container) -> int:
    """`dynamic-nginx.port`, else the single exposed port, else 80."""
    label = L.LABEL_PREFIX + "port"
    if label in container.labels:
        return L.parse_port(container.name, label, container.labels[label])
    ports = sorted(set(container.exposed_ports))
    if len(ports) == 1:
        return ports[0]
    if not ports or 80 in ports:
        return 80
    raise Excluded(
        f"container {container.name}: exposes several ports "
        f"({', '.join(map(str, ports))}) and none is 80; "
        f"set the label {label}=<port> to choose one; left out"
    )


def server_for(container: Container, proxy: Proxy) -> Server:
    """The server line for one container, or Excluded/LabelError saying why not."""
    if not L.is_name(container.service):
        raise Excluded(
            f"container {container.name}: service name {container.service!r} cannot name "
            "an nginx upstream; left out"
        )
    port = choose_port(container)
    network, address = choose_network(container, proxy)
    return Server(address=f"{address}:{port}", port=port, network=network, container=container)


def _sort_key(server: Server) -> tuple[int, str, str]:
    return (server.container.number, server.container.name, server.container.id)


def build(
    containers: Iterable[Container],
    proxy: Proxy,
    extra_upstreams: Iterable[str] = (),
) -> Model:
    """Group live, in-scope containers into upstreams named `<service>.upstream`.

    `extra_upstreams` are names that must exist even with no container (ones
    the user's config refers to, or that we served before), so nginx answers
    503 for them instead of failing to load the configuration.
    """
    groups: dict[str, list[Server]] = {
        name.lower(): [] for name in extra_upstreams if L.is_name(name)
    }
    problems: list[str] = []
    included: list[Container] = []
    for container in sorted(containers, key=lambda c: (c.name, c.id)):
        if not in_scope(container, proxy):
            continue
        name = L.upstream_name(container.service)
        if L.is_name(container.service):  # else server_for reports it; the name must not reach a template
            groups.setdefault(name, [])
        if not is_live(container):
            continue
        try:
            server = server_for(container, proxy)
        except (Excluded, L.LabelError) as error:
            problems.append(str(error))
            continue
        groups[name].append(server)
        included.append(container)
    upstreams = tuple(
        Upstream(name=name, servers=tuple(sorted(servers, key=_sort_key)))
        for name, servers in sorted(groups.items())
    )
    return Model(
        upstreams=upstreams,
        containers=tuple(included),
        proxy=proxy,
        problems=tuple(problems),
    )
