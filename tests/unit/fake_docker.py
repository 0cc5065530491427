"""A fake docker-py APIClient for the unit tests: the methods DockerSource calls, over a dict of containers."""

from __future__ import annotations

import dataclasses
import queue
from collections.abc import Iterator
from typing import Any

from dynamic_nginx.labels import COMPOSE_PROJECT, COMPOSE_SERVICE
from support import PROJECT, PROXY_ID
from support import container_id as container_id_of

NETWORK = f"{PROJECT}_default"


class APIError(Exception):
    """What docker-py raises for an HTTP error: the status is on `status_code`."""

    def __init__(self, status_code: int):
        super().__init__(f'{status_code} Server Error: Internal Server Error ("oops")')
        self.status_code = status_code


@dataclasses.dataclass
class Record:
    name: str
    ip: str
    state: str = "running"
    health: str | None = None
    service: str = "filler"
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    networks: dict[str, str] | None = None  # network -> address; None: `ip` on NETWORK


# What GET /containers/json leaves out without all=1.
STOPPED = ("created", "exited", "dead")


class FakeEvents:
    """docker-py's `events` and `ping`: the stream a test feeds, and the filters it was asked with."""

    event_filters: dict[str, Any] | None = None
    stream: FakeStream | None = None

    def events(self, decode: bool, filters: dict[str, Any]) -> FakeStream:
        self.event_filters = filters
        self.stream = FakeStream()
        return self.stream

    def ping(self) -> bool:
        return True


class FakeDocker(FakeEvents):
    """The docker-py APIClient methods DockerSource uses, over a dict of containers.

    `fail` maps an id to the exception its inspect raises; `inspected` counts inspects.
    """

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.fail: dict[str, BaseException] = {}
        self.inspected: list[str] = []

    def add(self, name: str, ip: str, **fields: Any) -> str:
        container_id = container_id_of(name)
        self.records[container_id] = Record(name, ip, **fields)
        return container_id

    def _labels(self, record: Record) -> dict[str, str]:
        return {COMPOSE_PROJECT: PROJECT, COMPOSE_SERVICE: record.service, **record.labels}

    def containers(self, filters: dict[str, str], all: bool = False) -> list[dict[str, Any]]:
        key, _, value = filters["label"].partition("=")
        listed = []
        for container_id, r in self.records.items():
            if self._labels(r).get(key) != value or (r.state in STOPPED and not all):
                continue
            health = {None: "", "starting": " (health: starting)"}.get(r.health, f" ({r.health})")
            status = "Up 5 minutes (Paused)" if r.state == "paused" else f"Up 5 minutes{health}"
            listed.append(
                {
                    "Id": container_id,
                    "Names": [f"/{r.name}"],
                    "Labels": self._labels(r),
                    "State": r.state,
                    "Status": status,
                    "NetworkSettings": {"Networks": _networks(r)},
                }
            )
        return listed

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspected.append(container_id)
        if container_id in self.fail:
            raise self.fail[container_id]
        if container_id == PROXY_ID:
            r = Record("shop-proxy-1", "172.18.0.100", service="proxy")
        elif container_id in self.records:
            r = self.records[container_id]
        elif named := [i for i, r in self.records.items() if r.name == container_id.lstrip("/")]:
            container_id, r = named[0], self.records[named[0]]  # Docker takes a name where an id goes
        else:
            raise APIError(404)
        state: dict[str, Any] = {"Status": r.state}
        if r.health:
            state["Health"] = {"Status": r.health}
        return {
            "Id": container_id,
            "Name": f"/{r.name}",
            "Config": {"Labels": self._labels(r), "ExposedPorts": {"80/tcp": {}}},
            "State": state,
            "NetworkSettings": {"Networks": _networks(r)},
        }


def _networks(r: Record) -> dict[str, dict[str, str]]:
    return {n: {"IPAddress": ip} for n, ip in (r.networks if r.networks is not None else {NETWORK: r.ip}).items()}


class FakeStream:
    """docker-py's event stream: blocks until an event is fed or it is closed."""

    def __init__(self) -> None:
        self._items: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def feed(self, raw: dict[str, Any]) -> None:
        self._items.put(raw)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self._items.get()) is not None:
            yield item

    def close(self) -> None:
        self._items.put(None)
