"""Large hosts: a resync re-inspects only what the list shows changed, one container
that cannot be inspected is skipped, the event queue is bounded, and the daemon
filters out the events we never act on. Against a fake docker-py APIClient."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import docker_source as D
from dynamic_nginx import events as E
from dynamic_nginx.inbox import OVERFLOW, Inbox
from dynamic_nginx.model import Container
from dynamic_nginx.settings import Wait
from dynamic_nginx.view import DockerView
from dynamic_nginx.watcher import Watcher
from fake_docker import NETWORK, APIError, FakeDocker
from support import PROJECT, PROXY_ID, container, settings_in


def filled(count: int) -> tuple[FakeDocker, list[str]]:
    docker = FakeDocker()
    ids = [docker.add(f"shop-filler-{n}", f"172.18.{n // 250}.{n % 250 + 2}") for n in range(count)]
    return docker, ids


# --- which cached inspects a list shows to be stale -------------------------------------------


CACHED = container("shop-web-1", ip="172.18.0.2", health="healthy")


def summary(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "Id": CACHED.id,
        "Names": ["/shop-web-1"],
        "State": "running",
        "Status": "Up 3 minutes (healthy)",
        "NetworkSettings": {"Networks": {NETWORK: {"IPAddress": "172.18.0.2"}}},
    }
    values.update(fields)
    return values


@pytest.mark.parametrize(
    ("cached", "listed", "valid"),
    [
        pytest.param(CACHED, summary(), True, id="nothing changed"),
        pytest.param(CACHED, summary(Names=["/shop-web-1", "/shop-app-1/web"]), True, id="a link alias is not a name"),
        pytest.param(CACHED, summary(Names=["/shop-web-2"]), False, id="renamed"),
        pytest.param(CACHED, summary(Status="Up 3 minutes (unhealthy)"), False, id="became unhealthy"),
        pytest.param(CACHED, summary(Status="Up 3 minutes (health: starting)"), False, id="health starting"),
        pytest.param(CACHED, summary(Status="Up 3 minutes"), False, id="health no longer shown"),
        pytest.param(
            dataclasses.replace(CACHED, health=None), summary(Status="Up 3 minutes"), True, id="no health check"
        ),
        pytest.param(
            CACHED, summary(State="paused", Status="Up 3 minutes (Paused)"), False, id="paused: health not shown"
        ),
        pytest.param(CACHED, summary(State="restarting"), False, id="restarting"),
        pytest.param(
            CACHED,
            summary(NetworkSettings={"Networks": {NETWORK: {"IPAddress": "172.18.0.9"}}}),
            False,
            id="new address (restarted while events were lost)",
        ),
        pytest.param(
            CACHED,
            summary(
                NetworkSettings={"Networks": {NETWORK: {"IPAddress": "172.18.0.2"}, "other": {"IPAddress": "10.0.0.2"}}}
            ),
            False,
            id="connected to another network",
        ),
        pytest.param(CACHED, summary(NetworkSettings=None), False, id="NetworkSettings null"),
    ],
)
def test_a_cached_inspect_is_valid_while_the_list_shows_nothing_else(
    cached: Container, listed: dict[str, Any], valid: bool
) -> None:
    assert D.still_valid(cached, listed) is valid


def change_web(docker: FakeDocker, ids: list[str]) -> set[str]:
    docker.records[ids[3]].ip = "172.18.9.9"
    return {ids[3]}


def add_one(docker: FakeDocker, ids: list[str]) -> set[str]:
    return {docker.add("shop-filler-new", "172.18.9.10")}


def remove_one(docker: FakeDocker, ids: list[str]) -> set[str]:
    del docker.records[ids[0]]
    return set()


def unhealthy(docker: FakeDocker, ids: list[str]) -> set[str]:
    docker.records[ids[5]].health = "unhealthy"
    return {ids[5]}


@pytest.mark.parametrize(
    ("change", "count"),
    [
        pytest.param(lambda docker, ids: set(), 500, id="nothing changed: no inspect"),
        pytest.param(change_web, 500, id="one has a new address: only it"),
        pytest.param(add_one, 501, id="one is new: only it"),
        pytest.param(remove_one, 499, id="one is gone: no inspect"),
        pytest.param(unhealthy, 500, id="one turned unhealthy: only it"),
    ],
)
def test_a_second_list_inspects_only_what_it_shows_changed(change: Any, count: int) -> None:
    docker, ids = filled(500)
    source = D.DockerSource(docker)
    assert len(source.containers(PROJECT)) == 500
    assert len(docker.inspected) == 500
    docker.inspected.clear()
    expected = change(docker, ids)
    found = source.containers(PROJECT)
    assert set(docker.inspected) == expected
    assert len(found) == count
    for c in found:
        record = docker.records[c.id]
        assert (c.networks[NETWORK], c.health) == (record.ip, record.health), "what is served is what Docker says"


# --- many new containers are inspected INSPECT_PARALLEL at a time ------------------------------


class Threads(FakeDocker):
    """Notes the thread each inspect runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.threads.add(threading.current_thread().name)
        return super().inspect_container(container_id)


class Gathering(Threads):
    """Each inspect waits until INSPECT_PARALLEL are under way together (or fails after 5 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.together = threading.Barrier(D.INSPECT_PARALLEL, timeout=5)

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.together.wait()
        return super().inspect_container(container_id)


def test_many_new_containers_are_inspected_eight_at_a_time_in_list_order() -> None:
    docker = Gathering()
    ids = [docker.add(f"shop-filler-{n}", f"172.18.0.{n + 2}") for n in range(3 * D.INSPECT_PARALLEL)]
    found = D.DockerSource(docker).containers(PROJECT)
    assert [c.id for c in found] == ids, "the answer keeps the list's order"
    assert sorted(docker.inspected) == sorted(ids)
    assert len(docker.threads) == D.INSPECT_PARALLEL and "MainThread" not in docker.threads
    assert not [t for t in threading.enumerate() if t.name.startswith("inspect")], "the pool is gone"


@pytest.mark.parametrize("new", [1, D.INSPECT_PARALLEL - 1], ids=["one", "one fewer than the pool"])
def test_a_few_new_containers_are_inspected_one_after_the_other(new: int) -> None:
    docker = Threads()
    for n in range(30):
        docker.add(f"shop-filler-{n}", f"172.18.0.{n + 2}")
    source = D.DockerSource(docker)
    source.containers(PROJECT)
    docker.threads.clear()
    docker.inspected.clear()
    for n in range(new):
        docker.add(f"shop-new-{n}", f"172.18.1.{n + 2}")
    assert len(source.containers(PROJECT)) == 30 + new
    assert (docker.threads, len(docker.inspected)) == ({"MainThread"}, new)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ConnectionError("Connection aborted"), id="connection lost"),
        pytest.param(APIError(403), id="403"),
    ],
)
def test_an_error_in_a_parallel_inspect_raises_and_leaves_no_thread(error: BaseException) -> None:
    docker, ids = filled(5 * D.INSPECT_PARALLEL)
    docker.fail[ids[3]] = error
    with pytest.raises(type(error)):
        D.DockerSource(docker).containers(PROJECT)
    assert not [t for t in threading.enumerate() if t.name.startswith("inspect")]


# --- a container whose inspect fails ----------------------------------------------------------


def test_a_container_that_cannot_be_inspected_is_skipped_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    docker, ids = filled(5)
    docker.fail[ids[2]] = APIError(500)
    source = D.DockerSource(docker)
    with caplog.at_level("INFO", logger="watcher"):
        first = source.containers(PROJECT)
        docker.records[ids[4]].ip = "172.18.9.9"  # the others keep updating
        second = source.containers(PROJECT)
    assert [c.name for c in first] == ["shop-filler-0", "shop-filler-1", "shop-filler-3", "shop-filler-4"]
    assert [c.networks[NETWORK] for c in second if c.id == ids[4]] == ["172.18.9.9"]
    assert [r.getMessage() for r in caplog.records] == [
        'cannot inspect container shop-filler-2: 500 Server Error: Internal Server Error ("oops");'
        " it is left out of its upstreams until Docker answers"
    ], "one line, naming it and the error, however many lists fail"
    assert docker.inspected.count(ids[2]) == 2, "tried again at each list"
    caplog.clear()
    del docker.fail[ids[2]]
    with caplog.at_level("INFO", logger="watcher"):
        assert len(source.containers(PROJECT)) == 5
    assert [r.getMessage() for r in caplog.records] == ["container shop-filler-2 can be inspected again"]


def test_an_event_about_a_container_that_cannot_be_inspected_skips_only_it(caplog: pytest.LogCaptureFixture) -> None:
    docker, ids = filled(3)
    source = D.DockerSource(docker)
    listed = source.containers(PROJECT)
    docker.fail[ids[1]] = APIError(409)
    with caplog.at_level("INFO", logger="watcher"):
        kept = source.refresh(listed, {ids[1]}, PROJECT)
    assert sorted(c.name for c in kept) == ["shop-filler-0", "shop-filler-2"]
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["cannot inspect container shop-filler-1"]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(APIError(403), id="403: access refused is about us, not the container"),
        pytest.param(APIError(401), id="401"),
        pytest.param(ConnectionError("Connection aborted"), id="connection lost: Docker, not the container"),
        pytest.param(TimeoutError("timed out"), id="timeout"),
    ],
)
def test_errors_that_are_not_about_one_container_still_raise(error: BaseException) -> None:
    docker, ids = filled(3)
    docker.fail[ids[1]] = error
    with pytest.raises(type(error)):
        D.DockerSource(docker).containers(PROJECT)


def test_a_container_gone_between_list_and_inspect_is_left_out_silently(caplog: pytest.LogCaptureFixture) -> None:
    docker, ids = filled(3)
    docker.fail[ids[0]] = APIError(404)
    with caplog.at_level("INFO", logger="watcher"):
        assert len(D.DockerSource(docker).containers(PROJECT)) == 2
    assert not caplog.records


# --- the event queue and the daemon's filters ------------------------------------------------


def event(n: int) -> E.Event:
    return E.Event("container", "die", f"c{n}", {})


def drain(events: queue.Queue[object]) -> list[object]:
    items = []
    while not events.empty():
        items.append(events.get_nowait())
    return items


def test_a_burst_past_the_limit_is_dropped_for_one_list_and_one_line(caplog: pytest.LogCaptureFixture) -> None:
    events: queue.Queue[object] = queue.Queue()
    inbox = Inbox(events, limit=4)
    with caplog.at_level("WARNING", logger="watcher"):
        for n in range(1000):
            inbox.put(event(n))
    assert drain(events) == [event(0), event(1), event(2), event(3), OVERFLOW]
    assert len(caplog.records) == 1
    assert "dropping the rest of this burst and listing all containers" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("taken", "markers"),
    [
        pytest.param(True, 1, id="taken, then another overflow: another list"),
        pytest.param(False, 0, id="not taken yet: the pending list covers it"),
    ],
)
def test_an_overflow_after_the_list_was_made_asks_for_another(taken: bool, markers: int) -> None:
    events: queue.Queue[object] = queue.Queue()
    inbox = Inbox(events, limit=2)
    for n in range(5):
        inbox.put(event(n))
    drain(events)
    if taken:
        inbox.taken()
    for n in range(5):
        inbox.put(event(n))
    assert drain(events).count(OVERFLOW) == markers


def test_an_overflow_makes_the_watcher_list_everything(tmp_path: Path) -> None:
    view = DockerView()
    view.assume(D.Proxy(id=PROXY_ID, name="p", project=PROJECT, networks=()))
    assert view.changed([event(1), OVERFLOW], PROXY_ID) is None


def test_the_daemon_sends_only_the_events_we_act_on() -> None:
    docker = FakeDocker()
    D.DockerSource(docker).subscribe().close()
    filters = docker.event_filters
    assert filters is not None
    assert set(filters["type"]) == {"container", "network"}
    assert set(filters["event"]) == E.CONTAINER_ACTIONS | E.NETWORK_ACTIONS
    assert not [e for e in filters["event"] if e.startswith("exec_")]


# --- the watcher's periodic resync ------------------------------------------------------------


def test_a_periodic_resync_inspects_only_the_proxy_and_a_kill_is_acted_on(tmp_path: Path) -> None:
    docker, ids = filled(500)
    docker.records[ids[0]].service = "web"
    settings = settings_in(tmp_path, resync_interval=0.05, wait=Wait(0.01, 0.05), container=PROXY_ID, probe_ports=False)
    watcher = Watcher(settings, connect=lambda: D.DockerSource(docker))
    source = D.DockerSource(docker)
    follow = threading.Thread(target=watcher.follow, args=(source,), name="follow")
    follow.start()
    try:
        deadline = time.monotonic() + 10
        while not watcher.answered or len(docker.inspected) < 502:
            assert time.monotonic() < deadline, "the first list never came"
            time.sleep(0.01)
        docker.inspected.clear()
        time.sleep(0.5)  # several resyncs
        assert docker.inspected, "no resync happened"
        assert set(docker.inspected) == {PROXY_ID}, "a resync inspected containers the list shows unchanged"
        assert docker.stream is not None
        docker.stream.feed(
            {
                "Type": "container",
                "Action": "kill",
                "Actor": {"ID": ids[0], "Attributes": {"signal": "15", "name": "shop-filler-0"}},
            }
        )
        while ids[0] not in watcher.view.stopping:
            assert time.monotonic() < deadline, "the kill was not acted on"
            time.sleep(0.01)
    finally:
        watcher.stop()
        follow.join(10)
    assert not follow.is_alive()
