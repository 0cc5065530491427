"""Decision log lines: each container in or out with the status's reason code, once per change."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dynamic_nginx import docker_source as D
from dynamic_nginx import model, rundir
from dynamic_nginx.decisions import DecisionLog
from dynamic_nginx.settings import Wait
from dynamic_nginx.watcher import Watcher
from fake_docker import FakeDocker
from support import PROXY_ID, container, proxy, settings_in

WEB1 = container("shop-web-1", number=1, ip="172.18.0.2", exposed=(80,))
WEB2 = container("shop-web-2", number=2, ip="172.18.0.3", exposed=(80,), health="healthy")
SICK2 = container("shop-web-2", number=2, ip="172.18.0.3", exposed=(80,), health="unhealthy")
BAD = container("shop-bad-1", service="bad", ip="172.18.0.4", labels={"dynamic-nginx.port": "http"})
OTHER = container("other-app-1", project="other", service="app", ip="172.18.0.5")


def logged(caplog: pytest.LogCaptureFixture, *builds: tuple[model.Container, ...]) -> list[list[str]]:
    """The decision lines each successive build logs."""
    decisions = DecisionLog(logging.getLogger("watcher"))
    found = []
    with caplog.at_level("INFO", logger="watcher"):
        for containers in builds:
            caplog.clear()
            decisions.update(model.build(containers, proxy()))
            found.append([r.getMessage() for r in caplog.records])
    return found


def test_each_change_is_logged_once_with_its_reason_code(caplog: pytest.LogCaptureFixture) -> None:
    first, same, sick, healthy, gone = logged(caplog, (WEB1, WEB2), (WEB1, WEB2), (WEB1, SICK2), (WEB1, WEB2), (WEB1,))
    assert first == [
        "container shop-web-1: in web.upstream: server 172.18.0.2:80;",
        "container shop-web-2: in web.upstream: server 172.18.0.3:80;",
    ]
    assert same == [], "a sync that changes nothing logs nothing"
    assert sick == ["container shop-web-2: out (unhealthy): its health check says unhealthy"]
    assert healthy == ["container shop-web-2: in web.upstream: server 172.18.0.3:80;"]
    assert gone == ["container shop-web-2: gone (Docker no longer lists it)"]


def test_an_exclusion_with_a_problem_line_points_to_it(caplog: pytest.LogCaptureFixture) -> None:
    (lines,) = logged(caplog, (BAD,))
    assert lines == [
        "container shop-bad-1: out (label_invalid:dynamic-nginx.port); the line above says why and the fix"
    ]


def test_other_projects_containers_do_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    (lines,) = logged(caplog, (WEB1, OTHER))
    assert not [line for line in lines if "other-app-1" in line]


def test_the_watcher_logs_decisions_while_following_not_in_the_start_up_render(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docker = FakeDocker()
    web = docker.add("shop-web-1", "172.18.0.2", service="web")
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False, wait=Wait(0.01, 0.05))
    with caplog.at_level("INFO", logger="watcher"):
        Watcher(settings).render_once(D.DockerSource(docker))
        assert not [r for r in caplog.records if "container shop-web-1:" in r.getMessage()]
        watcher = Watcher(settings, connect=lambda: D.DockerSource(docker))
        thread = threading.Thread(target=watcher.run, name="watcher")
        thread.start()
        try:
            wait_until(lambda: docker.stream is not None and lines(caplog) != [])
            assert docker.stream is not None
            docker.stream.feed(
                {
                    "Type": "container",
                    "Action": "kill",
                    "Actor": {"ID": web, "Attributes": {"name": "shop-web-1", "signal": "15"}},
                }
            )
            wait_until(lambda: len(lines(caplog)) == 2)
        finally:
            watcher.stop()
            thread.join(10)
    assert lines(caplog) == [
        "container shop-web-1: in web.upstream: server 172.18.0.2:80 max_fails=1 fail_timeout=1s;",
        "container shop-web-1: out (stopping): it received the signal Docker stops it with",
    ]


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("container shop-web-1:")]


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_other_projects_containers_never_reach_the_status(tmp_path: Path) -> None:
    """Docker is asked for the proxy's project only, so a shared host's other projects are not listed at all."""
    from dynamic_nginx import status

    docker = FakeDocker()
    docker.add("shop-web-1", "172.18.0.2", service="web")
    docker.add("other-app-1", "172.18.0.5", service="app", labels={"com.docker.compose.project": "other"})
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False, status_listen="8081")
    watcher = Watcher(settings)
    watcher.sync(D.DockerSource(docker), PROXY_ID)
    watcher.status.flush()
    part = status.load(settings.run_dir / rundir.WATCHER_STATUS)
    assert part is not None
    assert part["excluded"] == []
    assert [m["name"] for u in part["upstreams"] for m in u["members"]] == ["shop-web-1"]
