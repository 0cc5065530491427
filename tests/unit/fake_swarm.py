"""A fake Swarm manager for the unit tests: the docker-py APIClient calls SwarmSource makes.

Services and tasks are kept as the API returns them (`GET /services`,
`GET /tasks`), built by `service()` and `task()` with keywords for what a
test cares about, so a case reads like the situation it describes.
"""

from __future__ import annotations

from typing import Any

from dynamic_nginx.swarm_source import SERVICE_ID, STACK, TASK_ID
from fake_docker import APIError, FakeEvents

STACK_NAME = "dn"
OVERLAY_ID = "overlaynetid0000000000000"  # the stack's network, which the proxy is on
OVERLAY = f"{STACK_NAME}_default"
INGRESS_ID = "ingressnetid0000000000000"
OTHER_ID = "othernetid000000000000000"  # a network the proxy is not on
PROXY_CONTAINER = "c" * 64
PROXY_SERVICE = "proxysvc"


def service(
    name: str,
    *,
    id: str = "",
    stack: str | None = STACK_NAME,
    labels: dict[str, str] | None = None,
    ports: tuple[int, ...] = (),
    vips: dict[str, str] | None = None,
    grace_ns: int | None = None,
) -> dict[str, Any]:
    """A `GET /services` entry for `<stack>_<name>`; `labels` are its deploy.labels."""
    spec_labels = {**({STACK: stack} if stack else {}), **(labels or {})}
    container: dict[str, Any] = {"Image": "backend"}
    if grace_ns is not None:
        container["StopGracePeriod"] = grace_ns
    return {
        "ID": id or f"svc-{name}",
        "Spec": {
            "Name": f"{stack}_{name}" if stack else name,
            "Labels": spec_labels,
            "TaskTemplate": {"ContainerSpec": container},
        },
        "Endpoint": {
            "Ports": [{"Protocol": "tcp", "TargetPort": p, "PublishedPort": 30000 + p} for p in ports],
            "VirtualIPs": [{"NetworkID": k, "Addr": v} for k, v in (vips or {}).items()],
        },
    }


def task(
    service_name: str,
    slot: int,
    ip: str,
    *,
    id: str = "",
    state: str = "running",
    desired: str = "running",
    network: str = OVERLAY_ID,
    ingress_ip: str | None = None,
    node: str = "node1",
) -> dict[str, Any]:
    """A `GET /tasks` entry of service `svc-<service_name>`, attached to `network` at `ip`."""
    attachments = [{"Network": {"ID": network, "Spec": {"Name": "net"}}, "Addresses": [f"{ip}/24"]}]
    if ingress_ip is not None:
        attachments.insert(0, {"Network": {"ID": INGRESS_ID, "Spec": {"Ingress": True}}, "Addresses": [ingress_ip]})
    return {
        "ID": id or f"task{service_name}{slot}".ljust(25, "0"),
        "ServiceID": f"svc-{service_name}",
        "Slot": slot,
        "NodeID": node,
        "CreatedAt": f"2026-12-01T10:00:{slot:02d}.5Z",
        "DesiredState": desired,
        "Status": {"State": state},
        "NetworksAttachments": attachments,
    }


class FakeSwarm(FakeEvents):
    """What a manager's API answers; `worker=True` answers like a worker (503 for services and tasks)."""

    def __init__(self, worker: bool = False) -> None:
        self.services_: list[dict[str, Any]] = []
        self.tasks_: list[dict[str, Any]] = []
        self.worker = worker
        self.calls: list[str] = []
        self.fail_tasks: BaseException | None = None

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.calls.append("inspect")
        if container_id not in (PROXY_CONTAINER, "dn_proxy.1.x"):
            raise APIError(404)
        networks = {
            OVERLAY: {"NetworkID": OVERLAY_ID, "IPAddress": "10.0.1.2"},
            "ingress": {"NetworkID": INGRESS_ID, "IPAddress": "10.0.0.5"},
        }
        return {
            "Id": PROXY_CONTAINER,
            "Name": "/dn_proxy.1.x",
            "Config": {"Labels": {STACK: STACK_NAME, TASK_ID: "proxytask", SERVICE_ID: PROXY_SERVICE}},
            "State": {"Status": "running"},
            "NetworkSettings": {"Networks": networks},
        }

    def _manager(self, call: str) -> None:
        self.calls.append(call)
        if self.worker:
            raise APIError(503)

    def services(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        self._manager("services")
        wanted = (filters or {}).get("label", [])
        listed = []
        for s in self.services_:
            labels = s["Spec"]["Labels"]
            if all(labels.get(k) == v for k, _, v in (w.partition("=") for w in wanted)):
                listed.append(s)
        return listed

    def tasks(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        self._manager("tasks")
        if self.fail_tasks is not None:
            raise self.fail_tasks
        desired = (filters or {}).get("desired-state")
        return [t for t in self.tasks_ if not desired or t["DesiredState"] in desired]
