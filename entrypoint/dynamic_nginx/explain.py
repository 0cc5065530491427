"""`python3 -m dynamic_nginx explain <container|service>`: every step of the decision about a container.

It asks Docker itself (read-only calls, the same DockerSource the watcher
uses) and decides with the watcher's own code: `rebuild` over the
containers Docker lists, and the model's rules one at a time for the words
(`in_scope`, `absence`, `network_choice`, `port_choice`). The
verdict is the one `build` reaches, so explain cannot disagree with the
rules; what it cannot see is the running watcher's memory (a stop signal
just received, a flapping hold), which the watcher's own status adds when
the status is on. It ends with a TCP connect from the proxy to the chosen
address, as nginx would make it.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from . import labels as L
from . import rundir, status
from .docker_source import DockerSource
from .exclusions import Excluded, absence
from .model import Container, Model, Proxy, Server, in_scope, network_choice, port_choice
from .readiness import accepting
from .rebuild import rebuild
from .settings import Settings

CONNECT_TIMEOUT = 2.0
# (ok, seconds, what happened) for a TCP connect to (host, port).
Connect = Callable[[str, int], tuple[bool, float, str]]


@dataclasses.dataclass(frozen=True)
class Step:
    """One line of the explanation: which question, whether it passed (None: no verdict), and the answer."""

    name: str
    ok: bool | None
    text: str


def tcp_connect(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> tuple[bool, float, str]:
    """Connect once from this network namespace (the proxy's) and close at once."""
    began = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, time.monotonic() - began, "connected"
    except TimeoutError:
        return False, time.monotonic() - began, "timed out"
    except OSError as error:
        name = errno.errorcode.get(error.errno or 0, "")
        return False, time.monotonic() - began, f"failed: {name or error}"


def server_line(server: Server) -> str:
    """The `server` line as the built-in template writes it (without the comment)."""
    return f"server {server.address}{' ' + server.parameters if server.parameters else ''};"


def _scope_step(container: Container, proxy: Proxy, scope: str) -> Step:
    decoded = container.decoded
    if container.id == proxy.id:
        return Step("scope", False, "no: it is the proxy itself")
    if in_scope(container, proxy, scope):
        if proxy.project and decoded.project == proxy.project:
            return Step("scope", True, f"yes: in the proxy's compose project {proxy.project}")
        return Step("scope", True, f"yes: it opts in with {L.LABEL_PREFIX}enable=true and DYNAMIC_NGINX_SCOPE=all")
    if decoded.oneoff:
        return Step("scope", False, "no: a one-off `compose run` container (out_of_scope)")
    hint = "" if scope == "all" else f"; with DYNAMIC_NGINX_SCOPE=all it may opt in with {L.LABEL_PREFIX}enable=true"
    return Step(
        "scope",
        False,
        f"no: its project is {decoded.project or '(none)'}, the proxy's is {proxy.project or '(none)'}"
        f"{hint} (out_of_scope)",
    )


def _labels_step(container: Container) -> Step:
    decoded = container.decoded
    if decoded.error is not None:
        error = decoded.error
        return Step("labels", False, f"invalid: label_invalid:{error.label}: {error}")
    ours = decoded.ours
    assert ours is not None
    if ours.enable is False:
        return Step("labels", False, f"{L.LABEL_PREFIX}enable is false (disabled_by_label)")
    count = sum(1 for k in container.labels if k.startswith(L.LABEL_PREFIX))
    wanted = ", ".join(m.upstream for m in ours.memberships) or "none"
    return Step("labels", True, f"valid ({count} {L.LABEL_PREFIX}* label(s)); it asks to join: {wanted}")


def _health_step(container: Container) -> Step:
    gating = container.decoded.health_gating
    if container.health is None:
        return Step("health", None, "no HEALTHCHECK: it joins once its port accepts connections")
    if gating is False:
        return Step("health", None, f"{container.health}, ignored: {L.LABEL_PREFIX}health_gating=false")
    ok = container.health == "healthy"
    return Step("health", ok, f"its health check says {container.health}")


def explain_container(
    container: Container,
    proxy: Proxy,
    model: Model,
    scope: str = "project",
    probe_ports: bool = True,
    connect: Connect = tcp_connect,
    rendered: Iterable[str] = (),
) -> list[Step]:
    """The steps for one container, given the model `build` made of everything Docker listed with it.

    Each step calls the model's rule for that question; the verdict is the
    model's own (a membership or an `Exclusion`). `rendered` are the texts
    rendered from that model, where the exact `server` line is looked up.
    """
    steps = [_scope_step(container, proxy, scope)]
    address: tuple[str, int] | None = None
    if steps[0].ok:
        absent = absence(container)  # health is a step of its own, below
        running = absent is None or absent[0] != "not_running"
        steps.append(Step("state", running, f"Docker says it is {container.state}"))
        steps.append(_labels_step(container))
        ours = container.decoded.ours
        try:
            network, ip, why = network_choice(container, proxy, ours.network if ours else None)
            steps.append(Step("network", True, f"{network} ({ip}): {why}"))
        except Excluded as error:
            steps.append(Step("network", False, f"{error.reason}: {error}"))
            ip = ""
        if ours is not None and ours.enable is not False:
            try:
                port, why = port_choice(container)
                named = [m for m in ours.memberships if m.port is not None]
                if named:
                    why += "; " + ", ".join(f"{m.upstream} uses {m.port} ({m.prefix}port)" for m in named)
                steps.append(Step("port", True, f"{port}: {why}"))
                address = (ip, port) if ip else None
            except Excluded as error:
                steps.append(Step("port", False, f"{error.reason}: {error}"))
            # A refusal of one upstream (of several) is only a problem line of the model's.
            for line in model.problems:
                if line.startswith(f"container {container.name}: ") and " left out of " in line:
                    steps.append(Step("upstream", False, line))
        elif ours is None:
            steps.append(Step("port", None, "not chosen: its labels are invalid"))
        steps.append(_health_step(container))
    steps += _verdict(container, model, probe_ports, list(rendered))
    steps.append(_connect_step(address, model, container, connect))
    return steps


def _verdict(container: Container, model: Model, probe_ports: bool, rendered: list[str]) -> list[Step]:
    servers = [(u.name, s) for u in model.upstreams for s in u.servers if s.container.id == container.id]
    excluded = next((e for e in model.excluded if e.id == container.id), None)
    steps = []
    if container.health is None and excluded is None and servers:
        said = "its port accepts connections" if probe_ports else "not probed (DYNAMIC_NGINX_PROBE_PORTS=false)"
        steps.append(Step("readiness", True, said))
    elif excluded is not None and excluded.reason == "starting":
        steps.append(Step("readiness", False, excluded.detail))
    for name, server in servers:
        line = server_line(server)
        exact = next((t for text in rendered for t in text.splitlines() if t.strip().startswith(line)), line)
        steps.append(Step("upstream", True, f"{name}: {exact.strip()}"))
    if servers:
        steps.append(Step("verdict", True, f"in: a member of {', '.join(n for n, _ in servers)}"))
    elif excluded is not None:
        steps.append(Step("verdict", False, f"out: {excluded.reason}: {excluded.detail}"))
    else:
        steps.append(Step("verdict", False, "out: not in any upstream"))
    return steps


def _connect_step(address: tuple[str, int] | None, model: Model, container: Container, connect: Connect) -> Step:
    chosen = next((s for u in model.upstreams for s in u.servers if s.container.id == container.id), None)
    if chosen is not None:
        host, _, port = chosen.address.rpartition(":")
        address = (host, int(port))
    if address is None:
        return Step("connect", None, "not tried: no address was chosen")
    ok, seconds, what = connect(*address)
    return Step("connect", ok, f"{address[0]}:{address[1]} from the proxy: {what} in {seconds * 1000:.1f} ms")


def _watcher_said(container: Container, part: dict[str, Any] | None) -> Step | None:
    """What the running watcher last decided about it (its status file)."""
    if not part:
        return None
    for u in part.get("upstreams") or []:
        for m in u.get("members") or []:
            if m.get("id") == container.id:
                return Step("watcher", True, f"the running watcher has it in {u.get('name')}: {m.get('server')}")
    for e in part.get("excluded") or []:
        if e.get("id") == container.id:
            return Step("watcher", False, f"the running watcher has it out: {e.get('reason')}: {e.get('detail')}")
    return Step("watcher", None, "the running watcher has not decided about it (yet)")


def matches(container: Container, target: str) -> bool:
    """`target` names this container: its name, an id prefix, or compose's short `<service>-<number>`."""
    short = f"{container.service}-{container.number}"
    return target in (container.name, short) or (len(target) >= 4 and container.id.startswith(target))


def find(target: str, listed: Sequence[Container]) -> tuple[list[Container], str]:
    """The containers `target` names among `listed` (one, or a service's replicas) and how it was taken."""
    named = [c for c in listed if matches(c, target)]
    if named:
        return named[:1], "container"
    service = [c for c in listed if c.service == target]
    return sorted(service, key=lambda c: (c.number, c.name)), "service"


def format_steps(container: Container, steps: Iterable[Step]) -> str:
    marks = {True: "ok  ", False: "NO  ", None: "--  "}
    head = (
        f"container {container.name} (id {container.short_id}, service {container.service or '(none)'}, "
        f"project {container.project or '(none)'})"
    )
    return "\n".join([head] + [f"  {marks[s.ok]}{s.name:<10} {s.text}" for s in steps]) + "\n"


@dataclasses.dataclass(frozen=True)
class Explained:
    """One container's steps, and the verdict as data: the upstreams it is in, or the reason code it is out."""

    container: Container
    steps: list[Step]
    upstreams: list[str]
    reason: str | None
    detail: str | None


@dataclasses.dataclass(frozen=True)
class Report:
    """What explain found for a target: the exit code, a line about the target (or ""), each container's steps."""

    target: str
    code: int
    message: str
    taken_as: str
    explained: list[Explained]

    def text(self) -> str:
        head = self.message + "\n" if self.message else ""
        return head + "".join(format_steps(e.container, e.steps) for e in self.explained)

    def data(self) -> dict[str, Any]:
        """The same steps as plain data (`explain --json`): a step's `ok` is true, false or null (no verdict)."""
        return {
            "target": self.target,
            "taken_as": self.taken_as,
            "found": self.code == 0,
            "message": self.message or None,
            "containers": [
                {
                    "name": e.container.name,
                    "id": e.container.id,
                    "service": e.container.service,
                    "project": e.container.project,
                    "member_of": e.upstreams,
                    "reason": e.reason,
                    "detail": e.detail,
                    "steps": [{"name": s.name, "ok": s.ok, "text": s.text} for s in e.steps],
                }
                for e in self.explained
            ],
        }


def examine(target: str, settings: Settings, source: DockerSource, connect: Connect = tcp_connect) -> Report:
    """Explain `target`: code 0 when it names a container or a service (with containers or none), 1 if not."""
    proxy = source.find_self(settings.container)
    if settings.project:
        proxy = dataclasses.replace(proxy, project=settings.project)
    listed = source.containers(proxy.project, opted_in=settings.scope == "all")
    services = source.services(proxy.project)
    chosen, how = find(target, listed)
    message = ""
    if not chosen:
        other = source.inspect(target)
        if other is None:
            if target in services:
                return Report(
                    target,
                    0,
                    f"service {target} of project {proxy.project} has no running container: "
                    f"{L.upstream_name(target)} has no server, and nginx answers 503 for it",
                    "service",
                    [],
                )
            return Report(
                target,
                1,
                f"no container or service named {target!r}: Docker knows no such container, and the proxy's "
                f"project {proxy.project or '(none)'} has the services {', '.join(sorted(services)) or 'none'}",
                "none",
                [],
            )
        chosen, listed = [other], [*listed, other]
    if how == "service":
        message = f"service {target}: {len(chosen)} container(s)"

    def unready(servers: Iterable[Server]) -> set[str]:
        servers = list(servers)
        open_ = accepting({s.address for s in servers})
        return {s.container.id for s in servers if s.address not in open_}

    model, rendered = rebuild(
        settings, proxy, listed, services=services, unready=unready if settings.probe_ports else None
    )
    part = status.load(settings.run_dir / rundir.WATCHER_STATUS)
    explained = []
    for container in chosen:
        steps = explain_container(
            container, proxy, model, settings.scope, settings.probe_ports, connect, rendered.outputs.values()
        )
        said = _watcher_said(container, part)
        if said is not None:
            steps.insert(len(steps) - 1, said)
        upstreams = [u.name for u in model.upstreams for s in u.servers if s.container.id == container.id]
        left = None if upstreams else next((e for e in model.excluded if e.id == container.id), None)
        reason, detail = (left.reason, left.detail) if left is not None else (None, None)
        explained.append(Explained(container, steps, upstreams, reason, detail))
    return Report(target, 0, message, how, explained)


def run(
    target: str,
    settings: Settings,
    source: DockerSource,
    out: TextIO,
    connect: Connect = tcp_connect,
    as_json: bool = False,
) -> int:
    """Explain `target` to `out`, as text or (`as_json`) as JSON: 0 when it names a container or a
    service, 1 if not."""
    report = examine(target, settings, source, connect)
    out.write(status.encode(report.data()).decode() if as_json else report.text())
    return report.code


def main(target: str, settings: Settings, out: TextIO, as_json: bool = False) -> int:
    """The command: Docker as the watcher reaches it (read-only calls only)."""
    from .swarm_source import for_mode

    return run(
        target, settings, for_mode(DockerSource.quick(10.0), settings.mode, settings.container), out, as_json=as_json
    )
