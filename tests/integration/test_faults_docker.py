"""Faults of the Docker connection, under load: a newer engine's API floor, Docker unreachable at
start, a socket proxy that goes away while running, a daemon restart.

Never the host's daemon: a socket proxy the test stops and starts (engines.SocketProxy) stands
in for Docker going away, and a nested engine (engines.Engine) is the daemon that restarts.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import BEHIND_SOCKET_PROXY, CONF_FOLDER, Engine, SocketProxy
from harness import (
    BACKEND_IMAGE,
    IMAGE,
    STATIC_SITE,
    Load,
    Project,
    free_port,
    get,
    record,
    rendered_servers,
    run,
    tally,
    wait_for,
)

SITE = STATIC_SITE


@pytest.fixture
def socket_proxy(tmp_path: Path) -> Iterator[SocketProxy]:
    proxy = SocketProxy(tmp_path / "docker-socket")
    yield proxy
    proxy.remove()


def behind(project, socket_proxy: SocketProxy) -> Project:
    compose = BEHIND_SOCKET_PROXY.replace("SOCKET_FOLDER", str(socket_proxy.folder)).replace("CONF", CONF_FOLDER)
    return project(compose, {"conf.d/default.conf": SITE})


def started_at(container: str) -> float:
    """The container's start, as a Unix time (Docker's clock is the host's)."""
    text = run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container]).stdout.strip()
    whole, _, fraction = text.rstrip("Z").partition(".")
    stamp = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()
    return stamp + float("0." + (fraction or "0"))


def first_answer(port: int, path: str, timeout: float) -> tuple[float, int, str]:
    """Poll until the first HTTP answer: (Unix time, status, body)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = get(port, path, timeout=2)
        if status:
            return time.time(), status, body
        time.sleep(0.01)
    raise AssertionError(f"no answer on {path} within {timeout}s")


def test_docker_unreachable_at_start_nginx_serves_and_upstreams_answer_503_until_docker_answers(project, socket_proxy):
    p = behind(project, socket_proxy)
    up = threading.Thread(target=p.up, kwargs={"app": 2})
    up.start()
    try:
        wait_for(lambda: p.ids("proxy"), 120, "the proxy container to exist", interval=0.01)
        answered, status, body = first_answer(p.port, "/static", timeout=20)
    finally:
        up.join(300)
    after_start = answered - started_at(p.proxy_id())
    record("docker unreachable at start: seconds from container start to /static answering", round(after_start, 2))
    assert (status, body) == (200, "static")
    # The bound is 0.5 s. Slack: on a 2-core machine shared by several suites at once, the
    # same start with Docker reachable took 1.4-2 s. Today's image never answers (no file, nginx -t fails).
    assert after_start < 3.0, f"/static answered {after_start:.2f}s after the container started"
    assert tally(p.port, 10) == {"status:503": 10}, "app.upstream answers 503 while Docker is away"
    logs = p.logs()
    first = [line for line in logs.splitlines() if "first render" in line]
    assert len(first) == 1 and "answer 503" in first[0] and "app.upstream" in first[0], first
    assert "unreachable at unix:///var/run/host-docker/docker.sock" in first[0]

    # Let the watcher fail for a while, so that its backoff has grown past the bound.
    wait_for(lambda: "watcher: ERROR: Docker unreachable" in p.logs(), 20, "the watcher's outage line")
    time.sleep(3)
    socket_proxy.start()
    reachable = time.monotonic()
    replicas = set(p.ids("app"))
    wait_for(lambda: get(p.port)[1] in replicas, 20, "a replica to answer once Docker is reachable", interval=0.01)
    served = time.monotonic() - reachable
    record("docker unreachable at start: seconds from Docker reachable to a replica answering", round(served, 2))
    p.wait_serving(replicas)
    # The bound is 1 s; slack as above.
    assert served < 4.0, f"real upstreams came {served:.2f}s after Docker became reachable"
    watcher = [line for line in p.logs().splitlines() if line.startswith("watcher:")]
    outage = [line for line in watcher if line.startswith("watcher: ERROR: Docker")]
    assert len(outage) == 1 and "unreachable" in outage[0], f"one line per outage, not one per retry: {watcher}"
    assert any("Docker answers again" in line for line in watcher), watcher


def test_socket_proxy_stopped_while_running_keeps_upstreams_and_catches_up(project, socket_proxy):
    socket_proxy.start()
    p = behind(project, socket_proxy)
    p.up(app=2)
    before = p.ids("app")
    p.wait_serving(before)
    with Load(p.port, clients=2, max_requests=20_000, max_seconds=90) as load:
        time.sleep(1)
        socket_proxy.stop()
        p.up(app=3)  # on the host's engine, which is fine: only the proxy's way to it is gone
        time.sleep(3)
        mark = len(load.snapshot())
        time.sleep(1)
        assert len(rendered_servers(p)) == 2, "the last good upstreams stay while Docker is away"
        assert load.served_by(mark) == set(before)
        socket_proxy.start()
        back = time.monotonic()
        waited = p.wait_serving(p.ids("app"), timeout=20)
        record(
            "socket proxy restart: seconds from Docker reachable to the new replica served",
            round(time.monotonic() - back, 2),
        )
        time.sleep(0.5)
    failures = load.failures()
    record("socket proxy restart: requests failed", len(failures))
    record("socket proxy restart: requests made", len(load.outcomes))
    assert failures == [], failures[:5]
    # The bound is about a second after Docker is back; slack for this noisy machine.
    assert waited < 4.0, f"the replica added while Docker was away was served {waited:.2f}s after it came back"
    logs = p.logs()
    assert logs.count("watcher: ERROR: Docker unreachable") == 1, logs[-3000:]
    assert "Docker answers again" in logs


def test_stalled_socket_proxy_keeps_upstreams_and_recovers_when_it_answers(project, socket_proxy):
    """A hung socket proxy (paused: connections open, no answer) stalls the event stream
    without ending it; the watchdog's ping notices, the upstreams stay, and
    a change made meanwhile is applied soon after Docker answers again."""
    socket_proxy.start()
    p = behind(project, socket_proxy)
    p.up(app=2)
    before = p.ids("app")
    p.wait_serving(before)
    # The watcher follows the event stream (it starts after nginx, which the first render fed).
    wait_for(lambda: "watcher: INFO: proxy container" in p.logs(), 20, "the watcher to follow events")
    time.sleep(2)
    with Load(p.port, clients=2, max_requests=20_000, max_seconds=120) as load:
        socket_proxy.freeze()
        try:
            p.up(app=3)
            # Quiet for the watchdog's period, then a ping that times out.
            wait_for(
                lambda: "does not answer a ping" in p.logs(),
                60,
                "the watchdog to notice that Docker does not answer",
                interval=1,
            )
            assert len(rendered_servers(p)) == 2, "the last good upstreams stay while Docker is stalled"
        finally:
            socket_proxy.thaw()
        back = time.monotonic()
        waited = p.wait_serving(p.ids("app"), timeout=30)
        record(
            "stalled socket proxy: seconds from it answering again to the new replica served",
            round(time.monotonic() - back, 2),
        )
        time.sleep(0.5)
    failures = load.failures()
    record("stalled socket proxy: requests failed", len(failures))
    record("stalled socket proxy: requests made", len(load.outcomes))
    assert failures == [], failures[:5]
    assert waited < 4.0, f"the replica added while Docker was stalled was served {waited:.2f}s after it answered"


# ---- a nested engine: Docker 29's API floor, and a daemon restart


class App:
    """A compose-like project run with plain `docker run` in a nested engine (no compose there):
    replicas labelled as compose labels them, and the proxy, reaching the engine's socket
    through its folder."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.project = "shop" + uuid.uuid4().hex[:6]
        self.network = self.project
        self.replicas = 0
        engine.docker("network", "create", self.network)
        site = f"/{self.project}/conf.d"
        engine.write(f"{site}/default.conf", SITE)

    def labels(self, service: str, number: int) -> list[str]:
        return [
            "--label",
            f"com.docker.compose.project={self.project}",
            "--label",
            f"com.docker.compose.service={service}",
            "--label",
            f"com.docker.compose.container-number={number}",
            "--label",
            "com.docker.compose.oneoff=False",
        ]

    def add(self) -> None:
        self.replicas += 1
        n = self.replicas
        self.engine.docker(
            "run",
            "-d",
            "--name",
            f"{self.project}-app-{n}",
            "--network",
            self.network,
            "--network-alias",
            "app",
            "--restart",
            "unless-stopped",
            *self.labels("app", n),
            BACKEND_IMAGE,
        )

    def start_proxy(self) -> None:
        self.engine.docker(
            "run",
            "-d",
            "--name",
            f"{self.project}-proxy-1",
            "--network",
            self.network,
            "-p",
            "8080:80",
            "--restart",
            "unless-stopped",
            *self.labels("proxy", 1),
            "-e",
            "DOCKER_HOST=unix:///var/run/host-docker/docker.sock",
            "-v",
            "/var/run:/var/run/host-docker:ro",
            "-v",
            f"/{self.project}/conf.d:/etc/nginx/conf.d",
            IMAGE,
        )

    def ids(self) -> set[str]:
        out = self.engine.docker(
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            "label=com.docker.compose.service=app",
        ).stdout
        return set(out.split())

    def proxy_logs(self) -> str:
        result = self.engine.docker("logs", f"{self.project}-proxy-1", check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        names = self.engine.docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}", check=False
        ).stdout.split()
        if names:
            self.engine.docker("rm", "-f", *names, check=False)
        self.engine.docker("network", "rm", self.network, check=False)


NESTED_PORT = 8080


@pytest.fixture(scope="module")
def engine(images) -> Iterator[tuple[Engine, int]]:
    """A Docker 26 engine that refuses API versions below 1.44, as Docker 29 does, with
    live-restore, so that its daemon can restart under the containers."""
    port = free_port()
    made = Engine(min_api="1.44", live_restore=True, ports={port: NESTED_PORT})
    try:
        made.start()
        made.load(IMAGE, BACKEND_IMAGE)
        yield made, port
    finally:
        made.remove()


@pytest.fixture
def app(engine) -> Iterator[tuple[App, int]]:
    made = App(engine[0])
    try:
        yield made, engine[1]
    finally:
        made.remove()


def test_engine_with_api_floor_144_first_request_from_a_replica_and_scale_followed(app):
    a, port = app
    a.add()
    a.add()
    replicas = a.ids()
    a.start_proxy()
    _, status, body = first_answer(port, "/", timeout=30)
    assert (status, body in replicas) == (200, True), "the first request is served by a replica, not a 503"
    logs = a.proxy_logs()
    assert "too old" not in logs, logs
    assert "first render: app.upstream=2" in logs, logs
    a.add()
    added = time.monotonic()
    wait_for(lambda: set(tally(port, 30)) == a.ids(), 20, "the added replica to be served", interval=0.05)
    record("API floor 1.44: seconds from a replica's start to it being served", round(time.monotonic() - added, 2))


def test_daemon_restart_with_live_restore_fails_no_request_and_events_are_followed_again(app):
    a, port = app
    a.add()
    a.add()
    a.start_proxy()
    wait_for(lambda: set(tally(port, 20)) == a.ids(), 30, "both replicas to be served", interval=0.05)
    with Load(port, clients=2, max_requests=20_000, max_seconds=90) as load:
        time.sleep(1)
        restart = a.engine.restart_daemon()
        record("nested dockerd restart (live-restore): seconds until it answers again", round(restart, 2))
        a.add()
        added = time.monotonic()
        wait_for(
            lambda: load.served_by(len(load.snapshot()) - 20) == a.ids(),
            20,
            "the replica added after the restart to be served",
            interval=0.1,
        )
        followed = time.monotonic() - added
        time.sleep(0.5)
    failures = load.failures()
    record("nested dockerd restart (live-restore): requests failed", len(failures))
    record("nested dockerd restart (live-restore): requests made", len(load.outcomes))
    record(
        "nested dockerd restart (live-restore): seconds from a replica's start to it being served", round(followed, 2)
    )
    assert failures == [], failures[:5]
    # Within about a second of Docker answering again (slack for this noisy machine), not
    # after a backoff that grew while the daemon was down.
    assert followed < 4.0, f"a replica started after the restart was served after {followed:.2f}s"
    watcher = [line for line in a.proxy_logs().splitlines() if line.startswith("watcher:")]
    assert any("Docker answers again" in line for line in watcher), watcher
    outage = [line for line in watcher if line.startswith("watcher: ERROR: Docker")]
    assert 1 <= len(outage) <= 2, f"the outage is logged once (twice if its kind changed): {outage}"


def test_daemon_restart_without_live_restore_everything_comes_back_with_all_upstreams(app):
    """Without live-restore, a daemon restart stops every container; restart policies bring
    them back, the proxy with every replica in its upstreams and events followed."""
    a, port = app
    a.add()
    a.add()
    a.start_proxy()
    wait_for(lambda: set(tally(port, 20)) == a.ids(), 30, "both replicas to be served", interval=0.05)
    proxy = f"{a.project}-proxy-1"
    started = a.engine.docker("inspect", "-f", "{{.State.StartedAt}}", proxy).stdout
    a.engine.set_live_restore(False)
    try:
        restart = a.engine.restart_daemon()
        back = time.monotonic()
        record("nested dockerd restart (no live-restore): seconds until it answers again", round(restart, 2))
        replicas = wait_for(lambda: len(a.ids()) == 2 and a.ids(), 60, "the replicas to be restarted")
        wait_for(lambda: set(tally(port, 20)) == replicas, 60, "both restarted replicas to be served", interval=0.05)
        record(
            "nested dockerd restart (no live-restore): seconds from the daemon answering to all replicas served",
            round(time.monotonic() - back, 2),
        )
        assert a.engine.docker("inspect", "-f", "{{.State.StartedAt}}", proxy).stdout != started, (
            "the proxy was stopped with the daemon and started again by its restart policy"
        )
        a.add()
        wait_for(lambda: set(tally(port, 30)) == a.ids(), 20, "a replica added afterwards to be served", interval=0.05)
    finally:
        a.engine.set_live_restore(True)
