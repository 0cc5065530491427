"""`explain`: the steps of the decision about one container (or a service's), through the fake
Docker client and the watcher's own rebuild, with the TCP connect replaced by a recording stub."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dynamic_nginx import docker_source as D
from dynamic_nginx import explain, rundir
from fake_docker import FakeDocker
from support import PROXY_ID, settings_in

calls: list[tuple[str, int]] = []


def connect(host: str, port: int) -> tuple[bool, float, str]:
    calls.append((host, port))
    return True, 0.0004, "connected"


def demo() -> FakeDocker:
    """The issue's demo: healthy, starting, unhealthy, bad-label and no-shared-network containers."""
    docker = FakeDocker()
    docker.add(
        "shop-web-1",
        "172.18.0.2",
        service="web",
        health="healthy",
        labels={"com.docker.compose.container-number": "1", "dynamic-nginx.weight": "2"},
    )
    docker.add(
        "shop-web-2",
        "172.18.0.3",
        service="web",
        health="starting",
        labels={"com.docker.compose.container-number": "2"},
    )
    docker.add("shop-sick-1", "172.18.0.4", service="sick", health="unhealthy")
    docker.add("shop-bad-1", "172.18.0.5", service="bad", labels={"dynamic-nginx.port": "http"})
    docker.add("shop-intruder-1", "172.18.0.9", service="intruder", labels={"dynamic-nginx.upstream": "web"})
    docker.add("shop-frozen-1", "172.18.0.8", service="frozen", state="paused")
    docker.add("shop-lonely-1", "10.9.0.2", service="lonely", networks={"elsewhere": "10.9.0.2"})
    docker.add("other-app-1", "172.18.0.7", service="app", labels={"com.docker.compose.project": "other"})
    return docker


def explained(tmp_path: Path, target: str) -> tuple[int, str]:
    calls.clear()
    out = io.StringIO()
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False)
    code = explain.run(target, settings, D.DockerSource(demo()), out, connect)
    return code, out.getvalue()


def step(text: str, name: str) -> str:
    """The first line of step `name`, with its ok/NO mark."""
    return next((line.strip() for line in text.splitlines() if line.strip()[4:].startswith(name + " ")), "")


@pytest.mark.parametrize(
    ("target", "expected", "connected"),
    [
        pytest.param(
            "shop-web-1",
            {
                "scope": "ok  scope      yes: in the proxy's compose project shop",
                "labels": "ok  labels     valid (1 dynamic-nginx.* label(s)); it asks to join: web.upstream",
                "network": "ok  network    shop_default (172.18.0.2): the only network it shares with the proxy",
                "port": "ok  port       80: the only port its image exposes",
                "health": "ok  health     its health check says healthy",
                "upstream": "ok  upstream   web.upstream: server 172.18.0.2:80 weight=2 max_fails=1 fail_timeout=1s;  # shop-web-1",
                "verdict": "ok  verdict    in: a member of web.upstream",
                "connect": "ok  connect    172.18.0.2:80 from the proxy: connected in 0.4 ms",
            },
            [("172.18.0.2", 80)],
            id="healthy: in, with the exact server line of the rendered file",
        ),
        pytest.param(
            "web-2",
            {
                "state": "ok  state      Docker says it is running",
                "health": "NO  health     its health check says starting",
                "verdict": "NO  verdict    out: health_starting: its health check says starting",
                "connect": "ok  connect    172.18.0.3:80 from the proxy: connected in 0.4 ms",
            },
            [("172.18.0.3", 80)],
            id="starting, named by compose's short name: out until its check passes, still connected to",
        ),
        pytest.param(
            "shop-sick-1",
            {"verdict": "NO  verdict    out: unhealthy: its health check says unhealthy"},
            [("172.18.0.4", 80)],
            id="unhealthy",
        ),
        pytest.param(
            "shop-bad-1",
            {
                "labels": "NO  labels     invalid: label_invalid:dynamic-nginx.port: container shop-bad-1: label",
                "verdict": "NO  verdict    out: label_invalid:dynamic-nginx.port: container shop-bad-1: label",
                "port": "--  port       not chosen: its labels are invalid",
                "connect": "--  connect    not tried: no address was chosen",
            },
            [],
            id="bad label: which label, and the one-line error",
        ),
        pytest.param(
            "shop-intruder-1",
            {
                "upstream": "NO  upstream   container shop-intruder-1: its labels would put it "
                "into web.upstream, which belongs to service web",
                "verdict": "NO  verdict    out: upstream_owned_by:web: container shop-intruder-1:",
            },
            [("172.18.0.9", 80)],
            id="labelled into another service's upstream: refused, with the owner",
        ),
        pytest.param(
            "shop-frozen-1",
            {
                "state": "NO  state      Docker says it is paused",
                "verdict": "NO  verdict    out: not_running: Docker says it is paused",
            },
            [("172.18.0.8", 80)],
            id="paused",
        ),
        pytest.param(
            "shop-lonely-1",
            {
                "network": "NO  network    no_shared_network: container shop-lonely-1: shares no network",
                "verdict": "NO  verdict    out: no_shared_network:",
                "connect": "--  connect    not tried: no address was chosen",
            },
            [],
            id="no shared network",
        ),
        pytest.param(
            "other-app-1",
            {
                "scope": "NO  scope      no: its project is other, the proxy's is shop; with DYNAMIC_NGINX_SCOPE=all",
                "verdict": "NO  verdict    out: out_of_scope:",
            },
            [],
            id="another project's container, which Docker's list never shows: asked by name",
        ),
    ],
)
def test_explain_says_each_step(
    tmp_path: Path, target: str, expected: dict[str, str], connected: list[tuple[str, int]]
) -> None:
    code, text = explained(tmp_path, target)
    assert code == 0, text
    for name, line in expected.items():
        assert step(text, name).startswith(line), text
    assert calls == connected


def test_a_service_is_explained_container_by_container(tmp_path: Path) -> None:
    code, text = explained(tmp_path, "web")
    assert code == 0
    assert text.startswith("service web: 2 container(s)\n")
    heads = [line for line in text.splitlines() if line.startswith("container ")]
    assert [h.split()[1] for h in heads] == ["shop-web-1", "shop-web-2"]


def test_an_unknown_name_says_what_there_is(tmp_path: Path) -> None:
    code, text = explained(tmp_path, "nope")
    assert code == 1
    assert text == (
        "no container or service named 'nope': Docker knows no such container, and the proxy's project shop "
        "has the services bad, frozen, intruder, lonely, sick, web\n"
    )


def test_the_running_watchers_decision_is_shown_when_its_status_exists(tmp_path: Path) -> None:
    from dynamic_nginx import status
    from dynamic_nginx.watcher import Watcher

    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False, status_listen="8081")
    watcher = Watcher(settings)
    watcher.sync(D.DockerSource(demo()), PROXY_ID)
    watcher.status.flush()
    assert status.load(settings.run_dir / rundir.WATCHER_STATUS)
    out = io.StringIO()
    assert explain.run("shop-sick-1", settings, D.DockerSource(demo()), out, connect) == 0
    assert "the running watcher has it out: unhealthy: its health check says unhealthy" in out.getvalue()


def test_tcp_connect_reports_a_refusal() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
    ok, seconds, what = explain.tcp_connect("127.0.0.1", port, timeout=1.0)
    assert (ok, what) == (False, "failed: ECONNREFUSED")
    assert 0 <= seconds < 1.0
