"""Swarm mode: tasks in, upstreams out, through the same model and templates as compose.

The cases are situations on a Swarm (a fake manager's answers) and what the
proxy must serve from them; then the mode choice, and the poll that stands in
for the task events Docker does not send.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import events as E
from dynamic_nginx.docker_source import DockerSource, NotFound
from dynamic_nginx.model import Model
from dynamic_nginx.settings import Wait
from dynamic_nginx.swarm_source import TASKS_CHANGED, SwarmSource, for_mode, service_from_api
from dynamic_nginx.watcher import Watcher
from fake_docker import APIError, FakeDocker
from fake_swarm import (
    INGRESS_ID,
    OTHER_ID,
    OVERLAY,
    OVERLAY_ID,
    PROXY_CONTAINER,
    PROXY_SERVICE,
    FakeSwarm,
    service,
    task,
)
from support import PROXY_ID, settings_in


def served(model: Model) -> dict[str, list[str]]:
    return {u.name: [f"{s.address}{s.parameters and ' ' + s.parameters}" for s in u.servers] for u in model.upstreams}


def excluded(model: Model) -> dict[str, str]:
    return {e.container: e.reason for e in model.excluded}


def render(tmp_path: Path, swarm: FakeSwarm, **settings: Any) -> tuple[Model, str]:
    conf = settings_in(tmp_path, container=PROXY_CONTAINER, probe_ports=False, **settings)
    # The user's site, which names the upstream: it exists (503) even while no task serves it.
    (conf.conf_dir / "site.conf").write_text("server { location / { proxy_pass http://app.upstream; } }\n")
    model = Watcher(conf, connect=lambda: SwarmSource(swarm)).render_once(SwarmSource(swarm))
    return model, "".join(p.read_text() for p in sorted(conf.conf_dir.glob("dynamic-nginx*.conf")))


def tname(service_name: str, slot: int) -> str:
    """The name a task of the fake manager is known by: `<stack>_<service>.<slot>.<task id>`."""
    return f"dn_{service_name}.{slot}.{task(service_name, slot, '')['ID']}"


def app(**labels: str) -> dict[str, Any]:
    return service("app", labels={"dynamic-nginx.port": "8000", **labels})


CASES = [
    pytest.param(
        [app()],
        [task("app", 1, "10.0.1.11"), task("app", 2, "10.0.1.12", node="node2")],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s", "10.0.1.12:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="running tasks on both nodes are served on the shared overlay, the stack prefix removed",
    ),
    pytest.param(
        [app()],
        [task("app", 1, "10.0.1.11"), task("app", 2, "10.0.1.12", desired="shutdown")],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="a task Swarm is shutting down leaves before its container stops",
    ),
    pytest.param(
        [app()],
        [task("app", 1, "10.0.1.11"), task("app", 2, "10.0.1.12", state="starting")],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"]},
        {tname("app", 2): "health_starting"},
        id="a task still starting (health check not passed yet) waits, and says why",
    ),
    pytest.param(
        [app()],
        [task("app", 1, "10.0.1.11", state="preparing"), task("app", 2, "10.0.1.12", state="complete")],
        {"app.upstream": []},
        {},
        id="tasks not yet or no longer running are not members; the upstream stays (503)",
    ),
    pytest.param(
        [app()],
        [task("app", 1, "10.0.1.11", ingress_ip="10.0.0.9/24")],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="the ingress network is never used, though the proxy is on it too",
    ),
    pytest.param(
        [app()],
        [task("app", 1, "10.0.9.11", network=OTHER_ID)],
        {"app.upstream": []},
        {tname("app", 1): "no_shared_network"},
        id="a task on no network the proxy shares is left out, with the reason",
    ),
    pytest.param(
        [app(**{"dynamic-nginx.weight": "5", "dynamic-nginx.lb": "least_conn", "dynamic-nginx.keepalive": "8"})],
        [task("app", 1, "10.0.1.11")],
        {"app.upstream": ["10.0.1.11:8000 weight=5 max_fails=1 fail_timeout=1s"]},
        {},
        id="deploy.labels carry every upstream feature, as compose labels do",
    ),
    pytest.param(
        [service("app", ports=(8000,))],
        [task("app", 1, "10.0.1.11")],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="the one target port a service publishes is its port, as EXPOSE is in compose",
    ),
    pytest.param(
        [service("app")],
        [task("app", 1, "10.0.1.11")],
        {"app.upstream": ["10.0.1.11:80 max_fails=1 fail_timeout=1s"]},
        {},
        id="no port label and none published: port 80, as in compose",
    ),
    pytest.param(
        [
            app(**{"dynamic-nginx.address": "vip"})
            | {"Endpoint": {"VirtualIPs": [{"NetworkID": OVERLAY_ID, "Addr": "10.0.1.5/24"}]}}
        ],
        [task("app", 1, "10.0.1.11"), task("app", 2, "10.0.1.12")],
        {"app.upstream": ["10.0.1.5:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="address=vip: one server, the service's virtual IP on the shared network",
    ),
    pytest.param(
        [app(**{"dynamic-nginx.address": "VIP; evil"})],
        [task("app", 1, "10.0.1.11")],
        {"app.upstream": []},
        {tname("app", 1): "label_invalid:dynamic-nginx.address"},
        id="a bad address label leaves the tasks out, named",
    ),
    pytest.param(
        [app(), service("api", labels={"dynamic-nginx.port": "9000"})],
        [task("app", 1, "10.0.1.11"), task("api", 1, "10.0.1.21")],
        {
            "api.upstream": ["10.0.1.21:9000 max_fails=1 fail_timeout=1s"],
            "app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"],
        },
        {},
        id="each service of the stack is its own upstream",
    ),
    pytest.param(
        [app(), service("web", stack="other", labels={"dynamic-nginx.port": "80"})],
        [task("app", 1, "10.0.1.11"), task("web", 1, "10.0.1.31")],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="another stack's services are not listed",
    ),
    pytest.param(
        [app(), service("proxy", id=PROXY_SERVICE)],
        [task("app", 1, "10.0.1.11"), task("proxy", 1, "10.0.1.2") | {"ServiceID": PROXY_SERVICE}],
        {"app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"]},
        {},
        id="the proxy's own service is never an upstream",
    ),
    pytest.param(
        [service("app", labels={"dynamic-nginx.port": "8000"})],
        [],
        {"app.upstream": []},
        {},
        id="a service scaled to 0: its upstream, which the site names, has no server (503)",
    ),
]


@pytest.mark.parametrize(("services", "tasks", "upstreams", "reasons"), CASES)
def test_tasks_become_upstreams(
    tmp_path: Path,
    services: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    upstreams: dict[str, list[str]],
    reasons: dict[str, str],
) -> None:
    swarm = FakeSwarm()
    swarm.services_, swarm.tasks_ = services, tasks
    model, text = render(tmp_path, swarm)
    assert served(model) == upstreams
    assert excluded(model) == reasons
    for name, servers in upstreams.items():
        assert f"upstream {name} {{" in text
        for server in servers:
            assert f"server {server}" in text


def test_scope_all_adds_the_services_of_other_stacks_that_opt_in(tmp_path: Path) -> None:
    swarm = FakeSwarm()
    swarm.services_ = [
        app(),
        service("web", stack="other", labels={"dynamic-nginx.enable": "true", "dynamic-nginx.upstream": "web"}),
        service("db", stack="other"),
    ]
    swarm.tasks_ = [task("app", 1, "10.0.1.11"), task("web", 1, "10.0.1.31"), task("db", 1, "10.0.1.41")]
    model, _ = render(tmp_path, swarm, scope="all")
    assert served(model) == {
        "app.upstream": ["10.0.1.11:8000 max_fails=1 fail_timeout=1s"],
        "web.upstream": ["10.0.1.31:80 max_fails=1 fail_timeout=1s"],
    }
    assert excluded(model) == {tname("db", 1).replace("dn_", "other_"): "out_of_scope"}


def test_the_proxy_is_its_stack_on_its_networks_but_ingress() -> None:
    proxy = SwarmSource(FakeSwarm()).find_self(PROXY_CONTAINER)
    assert (proxy.project, proxy.networks, proxy.id) == ("dn", (OVERLAY,), PROXY_CONTAINER)


def test_labels_stay_untrusted_text() -> None:
    """What deploy.labels say reaches the model as it is, with the compose labels derived, not trusted."""
    decoded = service_from_api(
        service("app", labels={"com.docker.compose.service": "x;y", "dynamic-nginx.upstream": "a b"})
    ).labels
    assert decoded["com.docker.compose.service"] == "app"
    assert decoded["com.docker.compose.project"] == "dn"
    assert decoded["dynamic-nginx.upstream"] == "a b"


MODES = [
    pytest.param("compose", False, "DockerSource", id="compose: never asks Swarm"),
    pytest.param("auto", False, "DockerSource", id="auto, a plain container: compose"),
    pytest.param("auto", True, "SwarmSource", id="auto, a Swarm task on a manager: Swarm"),
    pytest.param("swarm", False, "SwarmSource", id="swarm: Swarm whatever the container is"),
]


@pytest.mark.parametrize(("mode", "task_", "chosen"), MODES)
def test_the_mode_chooses_the_source(mode: str, task_: bool, chosen: str) -> None:
    api: Any = FakeSwarm() if task_ else FakeDocker()
    if not task_ and mode == "swarm":
        api = FakeSwarm()
    source = for_mode(DockerSource(api), mode, PROXY_CONTAINER if isinstance(api, FakeSwarm) else PROXY_ID)
    assert type(source).__name__ == chosen


def test_a_task_on_a_worker_is_told_the_fix() -> None:
    with pytest.raises(NotFound, match=r"not a manager.*node.role == manager"):
        for_mode(DockerSource(FakeSwarm(worker=True)), "auto", PROXY_CONTAINER)


def test_other_errors_are_not_mistaken_for_a_worker() -> None:
    swarm = FakeSwarm()
    swarm.services = lambda filters=None: (_ for _ in ()).throw(APIError(500))  # type: ignore[method-assign]
    with pytest.raises(APIError):
        for_mode(DockerSource(swarm), "swarm", PROXY_CONTAINER)


def collect(stream: Any, into: list[E.Event]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(stream), name="collect")
    thread.start()
    return thread


def eventually(check: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


@contextlib.contextmanager
def following(swarm: FakeSwarm, poll_interval: float) -> Iterator[list[E.Event]]:
    """`app` with one task, listed once, then its stream followed: yields what the stream says."""
    swarm.services_, swarm.tasks_ = [app()], [task("app", 1, "10.0.1.11")]
    source = SwarmSource(swarm, poll_interval=poll_interval)
    source.containers("dn")
    stream = source.subscribe()
    heard: list[E.Event] = []
    thread = collect(stream, heard)
    try:
        yield heard
    finally:
        stream.close()
        thread.join(5)
    assert not thread.is_alive()


def service_event(action: str = "update") -> dict[str, Any]:
    return {"Type": "service", "Action": action, "Actor": {"ID": "svc-app", "Attributes": {"name": "dn_app"}}}


def test_the_poll_stands_in_for_task_events() -> None:
    swarm = FakeSwarm()
    with following(swarm, poll_interval=0.01) as heard:
        assert swarm.event_filters == {"type": ["service", "node"]}
        eventually(lambda: swarm.calls.count("tasks") >= 4, "never polled")
        assert heard == [], "no change, no event"
        swarm.tasks_.append(task("app", 2, "10.0.1.12", state="starting"))
        eventually(lambda: heard == [TASKS_CHANGED], "a new task was not noticed")
        swarm.tasks_[1]["Status"]["State"] = "running"
        eventually(lambda: heard == [TASKS_CHANGED] * 2, "a task that came up was not noticed")
        swarm.tasks_.append(task("web", 1, "10.0.1.31"))  # a service it does not serve from
        polls = swarm.calls.count("tasks")
        eventually(lambda: swarm.calls.count("tasks") >= polls + 3, "stopped polling")
        assert len(heard) == 2, "tasks of other services wake nothing"
        assert swarm.stream is not None
        swarm.stream.feed(service_event())
        eventually(lambda: len(heard) == 3, "a service event was not passed on")
        assert (heard[2].type, heard[2].action, heard[2].container) == ("service", "update", "")


def test_a_list_right_after_a_poll_uses_its_answer() -> None:
    """The list that follows a change the poll saw asks Docker for the services once, the tasks not again."""
    swarm = FakeSwarm()
    swarm.services_, swarm.tasks_ = [app()], [task("app", 1, "10.0.1.11")]
    source = SwarmSource(swarm)
    source.proxy(PROXY_CONTAINER)
    source.polled()
    before = list(swarm.calls)
    assert [c.name for c in source.containers("dn")] == [tname("app", 1)]
    assert source.services("dn") == {"app"}
    assert swarm.calls[len(before) :] == ["services"]
    source.containers("dn")
    assert swarm.calls[len(before) + 1 :] == ["services", "tasks"], "a stale poll is not used"


def test_after_a_swarm_event_the_poll_quickens() -> None:
    """At rest every 30 s here; after a service event, a new task is noticed well before that."""
    swarm = FakeSwarm()
    with following(swarm, poll_interval=30) as heard:
        eventually(lambda: "tasks" in swarm.calls[1:], "never polled")
        assert swarm.stream is not None
        swarm.stream.feed(service_event())
        eventually(lambda: len(heard) == 1, "the service event was not passed on")
        swarm.tasks_.append(task("app", 2, "10.0.1.12"))
        eventually(lambda: heard[1:] == [TASKS_CHANGED], "the new task was not noticed soon", timeout=10)


@pytest.mark.parametrize(
    "end",
    [
        pytest.param("stream", id="Docker's event stream ends (a daemon restart)"),
        pytest.param("poll", id="a poll fails"),
    ],
)
def test_the_stream_ends_when_docker_goes(end: str) -> None:
    swarm = FakeSwarm()
    swarm.services_, swarm.tasks_ = [app()], [task("app", 1, "10.0.1.11")]
    source = SwarmSource(swarm, poll_interval=0.01)
    source.containers("dn")
    stream = source.subscribe()
    heard: list[E.Event] = []
    thread = collect(stream, heard) if end == "stream" else None
    if end == "stream":
        assert swarm.stream is not None
        swarm.stream.close()
        assert thread is not None
        thread.join(5)
        assert not thread.is_alive(), "the stream did not end with Docker's"
    else:
        swarm.fail_tasks = ConnectionError("gone")
        with pytest.raises(ConnectionError):
            list(stream)
        stream.close()


def test_a_watcher_follows_a_scale_on_swarm(tmp_path: Path) -> None:
    """The watcher end to end in Swarm mode: first render, then a new task and a task shut down."""
    swarm = FakeSwarm()
    swarm.services_, swarm.tasks_ = [app()], [task("app", 1, "10.0.1.11")]
    settings = settings_in(tmp_path, container=PROXY_CONTAINER, probe_ports=False, wait=Wait(0.01, 0.05))
    watcher = Watcher(settings, connect=lambda: SwarmSource(swarm, poll_interval=0.01))

    def text() -> str:
        return "".join(p.read_text() for p in sorted(settings.conf_dir.glob("*.conf")))

    thread = threading.Thread(target=watcher.run, name="watcher")
    thread.start()
    try:
        eventually(lambda: "10.0.1.11:8000" in text(), "the first render never came")
        swarm.tasks_.append(task("app", 2, "10.0.1.12"))
        eventually(lambda: "10.0.1.12:8000" in text(), "the new task was not served")
        swarm.tasks_[0]["DesiredState"] = "shutdown"
        eventually(lambda: "10.0.1.11:8000" not in text(), "the task shut down was not removed")
    finally:
        watcher.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert INGRESS_ID not in text()


def test_explain_tells_each_task_of_a_service(tmp_path: Path) -> None:
    """`dynamic-nginx explain app` on a Swarm: each task of the service, its verdict the one the watcher reaches."""
    from dynamic_nginx import explain

    swarm = FakeSwarm()
    swarm.services_ = [app()]
    swarm.tasks_ = [task("app", 1, "10.0.1.11"), task("app", 2, "10.0.9.12", network=OTHER_ID)]
    settings = settings_in(tmp_path, container=PROXY_CONTAINER, probe_ports=False)
    report = explain.examine("app", settings, SwarmSource(swarm))
    verdicts = {e.container.name: (e.upstreams, e.reason) for e in report.explained}
    assert report.code == 0
    assert verdicts == {tname("app", 1): (["app.upstream"], None), tname("app", 2): ([], "no_shared_network")}
    one = explain.examine(tname("app", 2)[: len("dn_app.2")], settings, SwarmSource(swarm))
    assert [e.container.name for e in one.explained] == [tname("app", 2)], "a task by <service>.<slot>"
