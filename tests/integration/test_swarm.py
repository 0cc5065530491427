"""Swarm mode on two nodes, under load (issue 13, item 5).

One Swarm of two nested engines for the module (swarm.py): a stack of the
proxy, pinned to the manager with its port published there in host mode and
on the host's 127.0.0.1, and `app`, the demo backend, whose tasks run on both
nodes and are reached over the stack's overlay network. The proxy finds its
mode on its own (it is a Swarm task on a manager). Each test first brings
`app` to a known number of tasks, all served, then changes it under a steady
bounded load: scale up and down, rolling updates in both orders, a drained
node, and a restarted proxy.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import time
from collections.abc import Iterator

import pytest
from harness import BACKEND_IMAGE, IMAGE, SITE, Load, Outcome, record, tally, wait_for
from swarm import Stack, Swarm, Task, app_service, proxy_service

PORT = 8080  # where the proxy publishes on the manager


@pytest.fixture(scope="module")
def bed(images: None) -> Iterator[tuple[Stack, int]]:
    """The Swarm with the stack deployed: (stack, the proxy's port on 127.0.0.1)."""
    swarm = Swarm(ports=(PORT,))
    try:
        swarm.start({"manager": [IMAGE, BACKEND_IMAGE], "worker": [BACKEND_IMAGE]})
        stack = Stack(
            swarm,
            {"proxy": proxy_service(IMAGE, PORT, "site.conf"), "app": app_service(BACKEND_IMAGE, 2)},
            {"site.conf": SITE.format(upstream="app.upstream")},
        ).deploy()
        stack.wait_settled("proxy", 1)
        yield stack, swarm.host_port[PORT]
    finally:
        swarm.remove()


def serving(stack: Stack, port: int, replicas: int) -> list[Task]:
    """Bring `app` to `replicas` tasks, with every node available, and wait until each is served."""
    stack.swarm.availability("worker", "active")
    stack.scale("app", replicas)
    tasks = stack.wait_settled("app", replicas)
    wanted = {t.container for t in tasks}
    wait_for(lambda: set(tally(port, 4 * replicas + 4)) == wanted, 30, f"tasks {sorted(wanted)} served", interval=0.1)
    return tasks


def assert_nothing_lost(load: Load, stack: Stack, least: int = 100) -> None:
    outcomes = load.snapshot()
    failures = load.failures()
    assert len(outcomes) >= least, f"the load ran only {len(outcomes)} requests"
    assert not failures, f"{len(failures)} of {len(outcomes)} requests failed\n{story(load, stack)}"


def story(load: Load, stack: Stack) -> str:
    """What a failure report needs: the answers half a second at a time (by replica or error), the
    tasks with their times, and the proxy's own log lines."""
    outcomes = load.snapshot()
    start = min((o.sent for o in outcomes), default=0.0)
    buckets: dict[float, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        buckets[(o.sent - start) // 0.5 * 0.5][o.body if o.status == 200 else f"{o.status} {o.error}".strip()] += 1
    answers = [f"  +{at:5.1f} s {dict(counts)}" for at, counts in sorted(buckets.items())]
    tasks = [
        f"  {t.container or '-':12} {t.node:7} {t.state}/{t.desired} at +{t.since - start:.2f} s"
        for t in stack.tasks("app")
    ]
    own = [line for line in stack.logs("proxy").splitlines() if line.startswith(("watcher:", "reloader:"))]
    return "\n".join(["answers:", *answers, "tasks of app:", *tasks, "proxy log:", *own[-40:]])


def first_answers(outcomes: list[Outcome], since: float) -> dict[str, float]:
    """Wall clock of each body's first 200 that ended at or after `since`."""
    first: dict[str, float] = {}
    for o in sorted(outcomes, key=lambda o: o.done):
        if o.status == 200 and o.done >= since:
            first.setdefault(o.body, o.done)
    return first


def upstream_servers(stack: Stack, service: str = "app") -> list[str]:
    """The `server` lines of `<service>.upstream` in the proxy's generated file."""
    proxy = stack.running("proxy")[0].container
    text = stack.swarm.manager.docker("exec", proxy, "cat", "/etc/nginx/conf.d/dynamic-nginx-upstreams.conf").stdout
    block = re.search(rf"upstream {service}\.upstream \{{(.*?)\n\}}", text, re.S)
    return re.findall(r"^\s+server ([^\s;]+)", block.group(1), re.M) if block else []


def in_proxy(stack: Stack, *command: str) -> str:
    """Run a command in the proxy's container (on the manager); its stdout."""
    proxy = stack.running("proxy")[0].container
    return stack.swarm.manager.docker("exec", proxy, *command).stdout


@contextlib.contextmanager
def extra_service(stack: Stack, short: str, *flags: str) -> Iterator[str]:
    """One more service of the stack for a test, as `stack deploy` makes them (the stack's label, on
    its network), of the backend image; removed afterwards. Yields its Swarm name."""
    name = stack.service(short)
    stack.swarm.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", name,
        "--label", f"com.docker.stack.namespace={stack.name}", "--network", f"{stack.name}_default",
        *flags, BACKEND_IMAGE,
    )  # fmt: skip
    try:
        yield name
    finally:
        stack.swarm.docker("service", "rm", name, check=False)


def test_tasks_on_both_nodes_are_served_through_the_overlay(bed):
    stack, port = bed
    tasks = serving(stack, port, 4)
    assert {t.node for t in tasks} == {"manager", "worker"}, tasks
    assert len(upstream_servers(stack)) == 4
    assert set(tally(port, 40)) == {t.container for t in tasks}


def test_scale_1_to_5_serves_each_new_task_within_1s_of_running(bed):
    stack, port = bed
    before = {t.container for t in serving(stack, port, 1)}
    with Load(port, clients=4, max_requests=20_000, max_seconds=90) as load:
        time.sleep(0.5)
        stack.scale("app", 5)
        tasks = stack.wait_settled("app", 5)
        new = [t for t in tasks if t.container not in before]
        wait_for(lambda: all(load.first_from(t.container) for t in new), 10, "every new task served", interval=0.05)
        time.sleep(0.5)
    delays = {t.container: round(load.first_from(t.container) - t.since, 3) for t in new}  # type: ignore[operator]
    record("swarm: scale 1 -> 5, seconds from a task running to its first answer (each)", sorted(delays.values()))
    assert {t.node for t in tasks} == {"manager", "worker"}
    assert max(delays.values()) <= 1.0, f"{delays}\n{story(load, stack)}"
    assert_nothing_lost(load, stack)


def test_scale_5_to_1_fails_no_request(bed):
    stack, port = bed
    serving(stack, port, 5)
    with Load(port, clients=4, max_requests=20_000, max_seconds=90) as load:
        time.sleep(0.5)
        stack.scale("app", 1)
        (left,) = stack.wait_settled("app", 1)
        settled = time.time()
        time.sleep(1)
    assert load.hosts_since(settled) == {left.container}, story(load, stack)
    assert_nothing_lost(load, stack)


@pytest.mark.parametrize("order", ["stop-first", "start-first"])
def test_rolling_update_fails_no_request_and_none_takes_over_1s(bed, order):
    stack, port = bed
    old = {t.container for t in serving(stack, port, 3)}
    with Load(port, clients=4, max_requests=30_000, max_seconds=120) as load:
        time.sleep(0.5)
        image = stack.roll("app", order)
        wait_for(lambda: stack.update_state("app") == "completed", 90, f"the {order} update to complete", interval=0.5)
        tasks = stack.wait_settled("app", 3, image)
        done = time.time()
        time.sleep(1)
    summary = load.summary()
    record(f"swarm: rolling update {order} of 3 tasks under load", summary)
    assert not old & {t.container for t in tasks}, "every task was replaced"
    assert load.hosts_since(done) == {t.container for t in tasks}, story(load, stack)
    assert_nothing_lost(load, stack)
    assert not load.slow(1.0), load.slow(1.0)[:5]


def test_draining_a_node_takes_its_tasks_out_and_fails_no_request(bed):
    stack, port = bed
    tasks = serving(stack, port, 3)
    on_worker = {t.container for t in tasks if t.node == "worker"}
    assert on_worker, f"Swarm put no task on the worker: {tasks}"

    def all_on_manager() -> list[Task]:
        live = stack.settled("app", 3)
        return live if all(t.node == "manager" for t in live) else []

    try:
        with Load(port, clients=4, max_requests=20_000, max_seconds=90) as load:
            time.sleep(0.5)
            stack.swarm.availability("worker", "drain")
            tasks = wait_for(all_on_manager, 60, "all three tasks on the manager", interval=0.2)
            settled = time.time()
            time.sleep(1)
    finally:
        stack.swarm.availability("worker", "active")
    assert not load.hosts_since(settled) & on_worker, "the drained node's tasks still served\n" + story(load, stack)
    assert load.hosts_since(settled) == {t.container for t in tasks}, story(load, stack)
    assert len(upstream_servers(stack)) == 3
    assert_nothing_lost(load, stack)


def test_a_task_with_a_health_check_joins_only_once_healthy(bed):
    """Swarm holds a health-checked task `starting` until its check passes: out until then, with the reason."""
    stack, _ = bed
    flags = ["--label", "dynamic-nginx.port=8000", "--constraint", "node.role==manager"]
    flags += ["--health-cmd", "test -e /tmp/ready", "--health-interval", "1s", "--health-start-period", "120s"]
    with extra_service(stack, "gated", *flags):
        (task,) = wait_for(
            lambda: [t for t in stack.tasks("gated") if t.container and t.state == "starting"], 60, "gated starting"
        )
        time.sleep(2)  # polls and health checks come and go: it must stay out
        assert upstream_servers(stack, "gated") == ["127.0.0.1:29503"], "a task not yet healthy is served"
        (said,) = json.loads(in_proxy(stack, "dynamic-nginx", "explain", "gated", "--json"))["containers"]
        assert said["reason"] == "health_starting", said
        stack.swarm.manager.docker("exec", task.container, "touch", "/tmp/ready")
        servers = wait_for(lambda: [s for s in upstream_servers(stack, "gated") if s.endswith(":8000")], 15, "joined")
        assert len(servers) == 1, servers
        assert in_proxy(stack, "python3", "-c", FETCH.format(url=f"http://{servers[0]}/")).strip() == task.container


# Fetch a URL from inside the proxy's container (its image has python3, not curl).
FETCH = "import urllib.request; print(urllib.request.urlopen('{url}', timeout=5).read().decode(), end='')"


def test_a_service_labelled_vip_is_one_member_its_virtual_ip(bed):
    """`dynamic-nginx.address=vip`: the service is one member, at its virtual IP on the stack's network.

    Checked through `explain`, not with requests: Swarm's VIPs are IPVS rules, and this machine's
    kernel has no IPVS (no /proc/net/ip_vs), so no VIP routes here, for nginx or anyone.
    """
    stack, _ = bed
    flags = ["--label", "dynamic-nginx.port=8000", "--label", "dynamic-nginx.address=vip", "--replicas", "2"]
    with extra_service(stack, "pool", *flags):
        stack.wait_settled("pool", 2)
        network = json.loads(stack.swarm.docker("network", "inspect", f"{stack.name}_default").stdout)[0]["Id"]
        vips = stack.inspect("pool")["Endpoint"]["VirtualIPs"]
        (vip,) = [v["Addr"].split("/")[0] for v in vips if v["NetworkID"] == network]
        said = json.loads(in_proxy(stack, "dynamic-nginx", "explain", "pool", "--json"))
        (member,) = said["containers"]
        assert member["name"] == stack.service("pool"), said
        steps = {step["name"]: step for step in member["steps"]}
        assert steps["network"]["ok"] and f"({vip})" in steps["network"]["text"], steps["network"]
        assert steps["port"]["ok"] and steps["port"]["text"].startswith("8000"), steps["port"]


def test_restarted_proxy_serves_every_task_within_2s_of_its_start(bed):
    """Timed from the new container's start: Swarm reports a task with a health check (the
    image has one, every 15 s) `running` only once it passed, long after it began to serve."""
    stack, port = bed
    tasks = serving(stack, port, 3)
    (old,) = stack.running("proxy")
    with Load(port, clients=4, max_requests=30_000, max_seconds=120) as load:
        asked = time.time()
        stack.restart("proxy")
        (new,) = wait_for(
            lambda: [t for t in stack.tasks("proxy") if t.id != old.id and t.container and t.desired == "running"],
            60,
            "the new proxy's container",
            interval=0.1,
        )
        started = stack.started(new)
        wanted = {t.container for t in tasks}
        wait_for(lambda: load.hosts_since(started) >= wanted, 30, "every task served by the new proxy", interval=0.05)
    first = first_answers(load.snapshot(), started)
    back = max(first[c] for c in wanted) - started
    (running,) = wait_for(lambda: stack.running("proxy"), 40, "Swarm to report the new proxy running", interval=0.5)
    record(
        "swarm: proxy restarted: update -> new container started; started -> every task served; started -> Swarm "
        "says running (s)",
        [round(started - asked, 2), round(back, 3), round(running.since - started, 2)],
    )
    assert back <= 2.0
