"""Watcher.run() end to end against the fake Docker client: it renders, follows events, and stops when told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import docker_source as D
from dynamic_nginx import rundir
from dynamic_nginx.labels import COMPOSE_PROJECT
from dynamic_nginx.settings import Wait
from dynamic_nginx.watcher import Watcher
from fake_docker import FakeDocker
from support import PROJECT, PROXY_ID, settings_in


def rendered(conf: Path) -> str:
    return "".join(p.read_text() for p in sorted(conf.glob("*.conf")))


def eventually(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def docker_event(action: str, container_id: str, **attributes: str) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container_id, "Attributes": {COMPOSE_PROJECT: PROJECT, **attributes}},
    }


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Watcher, FakeDocker, Path]]:
    docker = FakeDocker()
    docker.add("shop-web-1", "172.18.0.2", service="web")
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False, wait=Wait(0.01, 0.05))
    watcher = Watcher(settings, connect=lambda: D.DockerSource(docker))
    thread = threading.Thread(target=watcher.run, name="watcher")
    thread.start()
    try:
        yield watcher, docker, settings.conf_dir
    finally:
        watcher.stop()
        thread.join(10)
    assert not thread.is_alive(), "run() did not return after stop()"


def test_run_renders_then_follows_a_start_and_a_stop(running: tuple[Watcher, FakeDocker, Path]) -> None:
    watcher, docker, conf = running
    eventually(lambda: "172.18.0.2:80" in rendered(conf), "the first render never came")
    new = docker.add("shop-web-2", "172.18.0.3", service="web")
    eventually(lambda: docker.stream is not None, "never subscribed")
    assert docker.stream is not None
    docker.stream.feed(docker_event("start", new, name="shop-web-2"))
    eventually(lambda: "172.18.0.3:80" in rendered(conf), "the started replica was not added")
    inspected = len(docker.inspected)
    docker.stream.feed(docker_event("kill", new, name="shop-web-2", signal="15"))
    eventually(lambda: "172.18.0.3:80" not in rendered(conf), "the stopped replica was not removed")
    assert new in watcher.view.stopping
    assert len(docker.inspected) == inspected, "a kill asks Docker nothing"


def test_run_reconnects_when_the_stream_ends(running: tuple[Watcher, FakeDocker, Path]) -> None:
    watcher, docker, conf = running
    eventually(lambda: docker.stream is not None and watcher.answered, "never subscribed")
    first = docker.stream
    assert first is not None
    docker.add("shop-web-2", "172.18.0.3", service="web")  # missed while the stream is down
    first.close()
    eventually(lambda: docker.stream is not first, "no new subscription after the stream ended")
    eventually(lambda: "172.18.0.3:80" in rendered(conf), "no resync after reconnecting")


def test_stop_ends_run_while_docker_is_away(tmp_path: Path) -> None:
    attempts: list[float] = []

    def away() -> D.DockerSource:
        attempts.append(time.monotonic())
        raise ConnectionRefusedError("no Docker here")

    watcher = Watcher(settings_in(tmp_path, container=PROXY_ID), connect=away)
    thread = threading.Thread(target=watcher.run, name="watcher")
    thread.start()
    eventually(lambda: len(attempts) >= 2, "run() did not retry")
    stopped = time.monotonic()
    watcher.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 5, "stop() waited out the backoff"


def test_the_status_file_follows_once_the_watcher_is_idle(running: tuple[Watcher, FakeDocker, Path]) -> None:
    from dynamic_nginx import status

    watcher, docker, conf = running
    path = watcher.settings.run_dir / rundir.WATCHER_STATUS

    def members() -> list[str]:
        part = status.load(path) or {}
        return [m["name"] for u in part.get("upstreams", []) for m in u["members"]]

    eventually(lambda: members() == ["shop-web-1"], "the status of the first sync was never written")
    eventually(lambda: docker.stream is not None, "never subscribed")
    assert docker.stream is not None
    inspected = len(docker.inspected)
    new = docker.add("shop-web-2", "172.18.0.3", service="web")
    docker.stream.feed(docker_event("start", new, name="shop-web-2"))
    eventually(lambda: "172.18.0.3:80" in rendered(conf), "the started replica was not added")
    eventually(lambda: members() == ["shop-web-1", "shop-web-2"], "the status did not follow the start")
    time.sleep(2 * status.STATUS_LATE)
    assert len(docker.inspected) == inspected + 1, "writing the status asked Docker nothing"
    assert watcher.status.due() is None
