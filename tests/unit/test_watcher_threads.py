"""A watcher session's threads end with it: once run() returns, nothing it started is still running."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dynamic_nginx import docker_source as D
from dynamic_nginx.settings import Wait
from dynamic_nginx.watcher import Watcher
from fake_docker import FakeDocker, FakeStream
from support import PROXY_ID, settings_in, threads_left_behind

LINGER = 0.3  # how long the slow stream's reader takes to notice close(): well under the watcher's bound


class SlowToEndStream(FakeStream):
    """A stream whose reader ends a while after close(), as a socket's reader may."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from super().__iter__()
        time.sleep(LINGER)


class SlowDocker(FakeDocker):
    def events(self, decode: bool, filters: dict[str, Any]) -> FakeStream:
        self.event_filters = filters
        self.stream = SlowToEndStream()
        return self.stream


def test_run_returns_only_after_its_event_pump_and_watchdog_ended(tmp_path: Path) -> None:
    docker = SlowDocker()
    docker.add("shop-web-1", "172.18.0.2", service="web")
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False, wait=Wait(0.01, 0.05))
    watcher = Watcher(settings, connect=lambda: D.DockerSource(docker))
    before = threading.enumerate()
    running = threading.Thread(target=watcher.run, name="watcher")
    running.start()
    deadline = time.monotonic() + 10
    while not (docker.stream is not None and watcher.answered):
        assert time.monotonic() < deadline, "the watcher never subscribed"
        time.sleep(0.01)
    watcher.stop()
    running.join(10)
    assert not running.is_alive(), "run() did not return after stop()"
    # No grace period: whatever the session started must be gone already.
    assert [t.name for t in threads_left_behind(before, grace=0)] == []
