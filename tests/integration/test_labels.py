"""Labels change which replica answers, through the real image and nginx.

Each test runs the README's label examples in a compose project and counts
which backend answered over real HTTP requests.
"""

from __future__ import annotations

import json
import threading
import time

from harness import PROXY, SITE, Project, get, rendered_servers, tally, wait_for


def service(name: str, labels: dict[str, str] | None = None) -> str:
    """A backend service with labels, written so that YAML, compose's `$`
    interpolation and our str.format() all leave the values exactly as given."""
    lines = [f"  {name}:", "    image: {backend}"]
    if labels:
        lines.append("    labels:")
        for key, value in labels.items():
            text = json.dumps(value.replace("$", "$$")).replace("{", "{{").replace("}", "}}")
            lines.append(f"      {key}: {text}")
    return "\n".join(lines) + "\n"


def make(project, upstream: str, *services: str) -> Project:
    return project(PROXY + "".join(services), {"conf.d/default.conf": SITE.format(upstream=upstream)})


def test_least_conn_avoids_the_busy_replica(project):
    p = make(project, "web.upstream", service("web", {"dynamic-nginx.lb": "least_conn"}))
    p.up(web=2)
    replicas = p.ids("web")
    p.wait_serving(replicas)
    slow: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: slow.append(get(p.port, "/?sleep=5", timeout=10)))
    thread.start()
    time.sleep(1)  # a loopback request reaches its backend in milliseconds; 1 s is ample
    fast = tally(p.port, 20)
    thread.join(15)
    assert slow and slow[0][0] == 200
    busy = slow[0][1]
    # Round robin would send half of these to the busy replica.
    assert fast == {next(r for r in replicas if r != busy): 20}, (busy, fast)


def test_ip_hash_keeps_a_client_on_one_replica(project):
    p = make(project, "web.upstream", service("web", {"dynamic-nginx.lb": "ip_hash"}))
    p.up(web=3)
    replicas = p.ids("web")
    # Under ip_hash only one replica ever answers us: wait until the config has all three.
    wait_for(lambda: len(rendered_servers(p)) == 3, 15, "three servers rendered")
    wait_for(lambda: get(p.port)[0] == 200, 15, "the proxy to answer")
    counts = tally(p.port, 60)
    assert len(counts) == 1 and next(iter(counts)) in replicas, counts


def test_round_robin_spreads_the_same_client(project):
    p = make(project, "web.upstream", service("web"))
    p.up(web=3)
    p.wait_serving(p.ids("web"))
    assert len(tally(p.port, 60)) == 3


def test_weights_split_traffic_between_services_in_one_upstream(project):
    p = make(
        project,
        "pool.upstream",
        service("heavy", {"dynamic-nginx.upstream": "pool", "dynamic-nginx.weight": "3"}),
        service("light", {"dynamic-nginx.upstream": "pool"}),
    )
    p.up(heavy=1, light=1)
    heavy, light = p.ids("heavy")[0], p.ids("light")[0]
    p.wait_serving([heavy, light])
    counts = tally(p.port, 200)
    # 3:1 is exact over whole cycles of 4, unless a reload restarts the cycle
    # mid-way; round robin would give 100/100.
    assert set(counts) == {heavy, light} and 135 <= counts[heavy] <= 165, counts


def test_backup_serves_only_when_the_primary_is_gone(project):
    p = make(
        project,
        "pool.upstream",
        service("main", {"dynamic-nginx.upstream": "pool"}),
        service("spare", {"dynamic-nginx.upstream": "pool", "dynamic-nginx.backup": "true"}),
    )
    p.up(main=1, spare=1)
    main, spare = p.ids("main")[0], p.ids("spare")[0]
    p.wait_serving([main])
    assert tally(p.port, 50) == {main: 50}
    p.up(main=0)
    p.wait_serving([spare])
    assert tally(p.port, 50) == {spare: 50}


def test_malicious_labels_change_nothing_for_anyone_else(project):
    injected = 'x; } server { listen 80 default_server; return 200 "pwned"; } upstream y {'
    p = make(
        project,
        "web.upstream",
        service("web"),
        service("evil", {"dynamic-nginx.weight": injected}),
        service("thief", {"dynamic-nginx.upstream": "web"}),
        service("sneak", {"dynamic-nginx.web.port": "8000"}),
        service("odd", {"dynamic-nginx.lb": "hash $request_uri;\n  server 127.0.0.1:9"}),
    )
    p.up(web=2, evil=1, thief=1, sneak=1, odd=1)
    web = p.ids("web")
    p.wait_serving(web)
    counts = tally(p.port, 100)
    assert set(counts) == set(web) and sum(counts.values()) == 100, counts
    rendered = (p.folder / "conf.d" / "dynamic-nginx-upstreams.conf").read_text()
    assert "pwned" not in rendered and "127.0.0.1:9" not in rendered
    logs = p.logs()
    for intruder in ("evil", "thief", "sneak", "odd"):
        assert any(
            f"container {p.name}_{intruder}_1" in line or f"container {p.name}-{intruder}-1" in line
            for line in logs.splitlines()
            if "watcher: ERROR" in line
        ), intruder
