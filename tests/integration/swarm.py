"""A two-node Docker Swarm on this one machine, for the Swarm tests and bench/swarm.py.

Two nested engines (engines.py's `Engine`, REFERENCE.md "Nested engines") on a
network the bed creates: the manager runs `docker swarm init`, the worker joins,
and each loads the images it needs with `docker save | docker load` (there is
no registry). A stack is deployed on the manager from files copied into its
container; a proxy publishes its port in `mode: host` on the manager, whose
container publishes it again on the host's 127.0.0.1. `remove()` deletes both
engines (their Swarm, tasks and images live in the engines' tmpfs) and the network.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from engines import Engine
from harness import run, wait_for

NODES = ("manager", "worker")
APP_PORT = 8000


def wall_clock(timestamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with nanoseconds, as Docker writes them."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", timestamp)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {timestamp!r}")
    base, fraction, zone = match.groups()
    moment = datetime.datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float("0." + (fraction or "0"))


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of a service as the manager reports it."""

    id: str
    slot: int
    node: str  # "manager" or "worker"
    container: str  # the first 12 digits of its container id: the demo backend's hostname, what it answers
    state: str  # Status.State: new ... running, shutdown, complete, failed, rejected
    desired: str  # DesiredState: running, shutdown or ready
    since: float  # wall clock of its last state change (for a running task: when it began running)
    image: str


def running(tasks: Iterable[Task]) -> list[Task]:
    """Tasks that run and are meant to: the ones a proxy should serve."""
    return [t for t in tasks if t.state == "running" and t.desired == "running"]


class Swarm:
    """The two engines in one Swarm. `ports` are the manager's container ports to publish
    on the host's 127.0.0.1; `host_port[p]` is where each landed."""

    def __init__(self, ports: Iterable[int] = (8080,)):
        from harness import free_port

        self.network = "dnt-swarm-" + uuid.uuid4().hex[:8]
        self.host_port = {port: free_port() for port in ports}
        self.manager = Engine(network=self.network, ports={h: p for p, h in self.host_port.items()})
        self.worker = Engine(network=self.network)
        self.node_ids: dict[str, str] = {}  # Swarm node id -> "manager" / "worker"
        self._tags = itertools.count(1)

    @property
    def engines(self) -> dict[str, Engine]:
        return {"manager": self.manager, "worker": self.worker}

    def start(self, images: dict[str, Iterable[str]], timeout: float = 120) -> Swarm:
        """Start both engines, form the Swarm, and load `images[node]` into each node (in parallel)."""
        run(["docker", "network", "create", self.network])
        both(lambda e: e.start(timeout), self.manager, self.worker)
        address = run(
            [
                "docker",
                "inspect",
                "--format",
                f"{{{{(index .NetworkSettings.Networks {json.dumps(self.network)}).IPAddress}}}}",
                self.manager.name,
            ]
        ).stdout.strip()
        self.manager.docker("swarm", "init", "--advertise-addr", address)
        token = self.manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        self.worker.docker("swarm", "join", "--token", token, f"{address}:2377")
        for node, engine in self.engines.items():
            self.node_ids[engine.docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()] = node
        wait_for(
            lambda: self.manager.docker("node", "ls", "--format", "{{.Status}}").stdout.split() == ["Ready"] * 2,
            timeout,
            "both nodes to be Ready",
            interval=0.2,
        )
        both(lambda node: self.engines[node].load(*images.get(node, ())), *NODES)
        return self

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The docker CLI on the manager: the Swarm's API."""
        return self.manager.docker(*args, check=check, timeout=timeout)

    def tag(self, image: str, tag: str) -> None:
        """Tag an image on every node, so a service can be updated to a name that is new to Swarm."""
        both(lambda e: e.docker("tag", image, tag), self.manager, self.worker)

    def node_id(self, node: str) -> str:
        return next(i for i, n in self.node_ids.items() if n == node)

    def availability(self, node: str, availability: str) -> None:
        """`drain`, `active` or `pause`, as `docker node update --availability` sets it."""
        self.docker("node", "update", "--availability", availability, self.node_id(node))

    def remove(self) -> None:
        both(lambda e: e.remove(), self.manager, self.worker)
        run(["docker", "network", "rm", self.network], check=False)


def both(action: Callable[[Any], object], *items: Any) -> None:
    """Run action on each item in its own thread (the engines are slow to start and load); re-raise the first error."""
    errors: list[BaseException] = []

    def guarded(item: Any) -> None:
        try:
            action(item)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class Stack:
    """A stack deployed on the bed's manager: `services` is the compose file's `services:` mapping,
    `configs` names file texts (copied into the manager container beside the stack file)."""

    def __init__(self, swarm: Swarm, services: dict[str, Any], configs: dict[str, str] | None = None):
        self.swarm = swarm
        self.name = "dnt" + uuid.uuid4().hex[:6]
        self.services = services
        self.configs = configs or {}

    def deploy(self) -> Stack:
        folder = f"/stacks/{self.name}"
        for name, text in self.configs.items():
            self.swarm.manager.write(f"{folder}/{name}", text)
        compose = {
            "version": "3.8",
            "services": self.services,
            "configs": {name: {"file": f"./{name}"} for name in self.configs},
        }
        # JSON is YAML: the compose file is written from the dict, no template to escape.
        self.swarm.manager.write(f"{folder}/stack.yml", json.dumps(compose, indent=2))
        self.swarm.docker("stack", "deploy", "--resolve-image", "never", "-c", f"{folder}/stack.yml", self.name)
        return self

    def service(self, short: str) -> str:
        """The Swarm name of a service of this stack (`<stack>_<service>`)."""
        return f"{self.name}_{short}"

    def tasks(self, short: str) -> list[Task]:
        """Every task the manager still lists for the service (history included), oldest first."""
        ids = self.swarm.docker("service", "ps", "-q", "--no-trunc", self.service(short)).stdout.split()
        if not ids:
            return []
        found = self.swarm.docker("inspect", "--type", "task", *ids, check=False)
        tasks = []
        for raw in json.loads(found.stdout or "[]"):
            status = raw.get("Status", {})
            tasks.append(
                Task(
                    id=raw["ID"],
                    slot=int(raw.get("Slot", 0)),
                    node=self.swarm.node_ids.get(raw.get("NodeID", ""), ""),
                    container=status.get("ContainerStatus", {}).get("ContainerID", "")[:12],
                    state=status.get("State", ""),
                    desired=raw.get("DesiredState", ""),
                    since=wall_clock(status["Timestamp"]),
                    image=raw.get("Spec", {}).get("ContainerSpec", {}).get("Image", ""),
                )
            )
        return sorted(tasks, key=lambda t: t.since)

    def running(self, short: str) -> list[Task]:
        return running(self.tasks(short))

    def settled(self, short: str, replicas: int, image: str | None = None) -> list[Task]:
        """The running tasks when exactly `replicas` run (of `image`, if given) and no other task is
        starting or stopping; else an empty list."""
        tasks = self.tasks(short)
        live = running(tasks)
        moving = [t for t in tasks if t.desired == "running" and t.state != "running"]
        moving += [t for t in tasks if t.desired != "running" and t.state in ("running", "starting", "preparing")]
        if len(live) != replicas or moving or (image and any(t.image != image for t in live)):
            return []
        return live

    def wait_settled(self, short: str, replicas: int, image: str | None = None, timeout: float = 90) -> list[Task]:
        return wait_for(
            lambda: self.settled(short, replicas, image),
            timeout,
            f"{replicas} tasks of {short} running{' ' + image if image else ''}, none starting or stopping",
            interval=0.2,
        )

    def scale(self, short: str, replicas: int) -> None:
        """Ask for `replicas` tasks and return at once (the caller watches them come or go)."""
        self.swarm.docker("service", "scale", "--detach", f"{self.service(short)}={replicas}")

    def update(self, short: str, *flags: str) -> None:
        """`docker service update` with flags, returning at once."""
        self.swarm.docker("service", "update", "--detach", "--no-resolve-image", *flags, self.service(short))

    def roll(self, short: str, order: str) -> str:
        """A rolling update of the service to a new tag of its image (a real change of its spec),
        `order` stop-first or start-first; returns the new image name at once."""
        current = self.inspect(short)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        repository = current.rsplit(":", 1)[0] if ":" in current.rsplit("/", 1)[-1] else current
        new = f"{repository}:roll{next(self.swarm._tags)}"
        self.swarm.tag(current, new)
        self.update(short, "--image", new, "--update-order", order)
        return new

    def restart(self, short: str) -> None:
        """Replace every task of the service (`docker service update --force`), returning at once."""
        self.update(short, "--force")

    def started(self, task: Task) -> float:
        """Wall clock when the task's container started (its node's State.StartedAt): a little
        before Swarm reports the task running."""
        engine = self.swarm.engines[task.node]
        return wall_clock(engine.docker("inspect", "--format", "{{.State.StartedAt}}", task.container).stdout.strip())

    def inspect(self, short: str) -> dict[str, Any]:
        return json.loads(self.swarm.docker("service", "inspect", self.service(short)).stdout)[0]

    def update_state(self, short: str) -> str:
        """The service's UpdateStatus.State (`updating`, `completed`, ...), or '' before any update."""
        return str(self.inspect(short).get("UpdateStatus", {}).get("State", ""))

    def logs(self, short: str) -> str:
        """The output of the service's newest task's container on the manager (where the proxy runs)."""
        mine = [t for t in self.tasks(short) if t.node == "manager" and t.container]
        if not mine:
            return ""
        result = self.swarm.manager.docker("logs", mine[-1].container, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.swarm.docker("stack", "rm", self.name, check=False)


def wait_gone(stack: Stack, timeout: float = 60) -> None:
    """Wait until the stack's containers are gone from both nodes (its network can then go too)."""

    def gone() -> bool:
        label = f"label=com.docker.stack.namespace={stack.name}"
        return all(not e.docker("ps", "-aq", "--filter", label).stdout.split() for e in stack.swarm.engines.values())

    deadline = time.monotonic() + timeout
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.5)


# The site each proxy serves: what the README recommends (harness.SITE) for the product, and
# for Debian's nginx the DNS workaround, re-resolving Swarm's `tasks.app` every second.
RESOLVER_SITE = """
server {
    listen 80;
    resolver 127.0.0.11 valid=1s ipv6=off;
    location / {
        set $u tasks.app;
        proxy_pass http://$u:8000;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
    }
}
"""


def proxy_service(image: str, published: int, site: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    """A proxy on the manager, its port published there in host mode, with the Docker socket
    (read-only) and its site from the stack's config `site` (the name of a config file)."""
    return {
        "image": image,
        "ports": [{"target": 80, "published": published, "mode": "host"}],
        "volumes": ["/var/run/docker.sock:/var/run/docker.sock:ro"],
        "configs": [{"source": site, "target": "/etc/nginx/conf.d/default.conf"}],
        "environment": environment or {},
        "stop_grace_period": "3s",
        "deploy": {"placement": {"constraints": ["node.role == manager"]}},
    }


def app_service(image: str, replicas: int, **deploy: Any) -> dict[str, Any]:
    """The demo backend, its port given as a label (a task's spec carries no EXPOSE), one task at a
    time in a rolling update. Swarm spreads a service's tasks over the nodes; at most 3 on a node
    makes 4 or 5 replicas use both nodes for certain, and 3 still fit on the manager alone."""
    return {
        "image": image,
        "stop_grace_period": "10s",
        "deploy": {
            "replicas": replicas,
            "labels": {"dynamic-nginx.port": str(APP_PORT)},
            "update_config": {"parallelism": 1, "delay": "0s", "monitor": "1s"},
            "placement": {"max_replicas_per_node": 3},
            **deploy,
        },
    }
