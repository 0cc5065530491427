"""A large host: with 500 containers in the proxy's project, the periodic resync
does not hold up a stopping replica's removal, and nothing is lost.

The 500 are cheap (`sleep infinity` without a network, opted out of serving
with `dynamic-nginx.enable=false`): the proxy lists and inspects them like any
container of its project, which is what a resync costs; they are never served.
Creating and removing them is most of this test's time (0.2 to 0.5 s each on
the test machine). They have no network, are created 2 at a time and removed 5 at a time:
a first version with 500 endpoints on the project's bridge, removed 200 at
a time, was followed by dockerd 20.10 wedging on this machine (every
`docker run` and `docker network ls` hung), and so was one that removed 50 at once.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import PROXY, REMOVE_AT_ONCE, WEB, Load, Project, record, rendered_servers, run, wait_for
from harness import SITE as SITE_FOR

FILLERS = 500
ROUNDS = 6
BOUND = 1.5  # seconds; the issue asks for "a few hundred milliseconds": slack for a noisy 2-core machine
COMPOSE = (
    PROXY
    + """    environment:
      DYNAMIC_NGINX_RESYNC_INTERVAL: "1"
      DYNAMIC_NGINX_LOG_LEVEL: debug
"""
    + WEB
)
SITE = SITE_FOR.format(upstream="web.upstream")
RESYNC_LINE = re.compile(r"sync \(listed\) took (\d+) ms")


def start_fillers(p: Project, count: int) -> list[str]:
    def one(n: int) -> str:
        return run(
            [
                "docker",
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                f"{p.name}_filler_{n}",
                "--label",
                f"com.docker.compose.project={p.name}",
                "--label",
                "com.docker.compose.service=filler",
                "--label",
                f"com.docker.compose.container-number={n}",
                "--label",
                "com.docker.compose.oneoff=False",
                "--label",
                "dynamic-nginx.enable=false",
                "debian:trixie-slim",
                "sleep",
                "infinity",
            ],
            timeout=120,
        ).stdout.strip()

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, range(count)))


def remove_fillers(p: Project) -> None:
    ids = run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={p.name}",
            "--filter",
            "label=com.docker.compose.service=filler",
        ]
    ).stdout.split()
    for at in range(0, len(ids), REMOVE_AT_ONCE):  # a few at a time: see the module's docstring
        run(["docker", "rm", "-f", *ids[at : at + REMOVE_AT_ONCE]], timeout=300, check=False)


def address(container: str) -> str:
    ip = run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container])
    return f"{ip.stdout.strip()}:8000"


def test_a_resync_with_500_containers_does_not_delay_a_stop(project):
    p = project(COMPOSE, {"conf.d/default.conf": SITE})
    p.up(web=2)
    began = time.monotonic()
    try:
        start_fillers(p, FILLERS)
        record("large host: seconds to start 500 fillers", round(time.monotonic() - began, 1))
        listed = run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={p.name}"]).stdout.split()
        assert len(listed) == FILLERS + 3
        replicas = p.ids("web")
        wait_for(lambda: len(rendered_servers(p)) == 2, 60, "both web replicas rendered")
        mark = len(p.logs())
        wait_for(lambda: len(RESYNC_LINE.findall(p.logs()[mark:])) >= 3, 60, "three resyncs with 500 containers")
        delays = []
        with Load(p.port, clients=4, max_seconds=240) as load:
            for n in range(ROUNDS):
                victim = p.ids("web")[n % 2]
                server = address(victim)
                wait_for(lambda server=server: server in rendered_servers(p), 30, f"{victim} rendered")
                wait_for(lambda: load.served_by(len(load.snapshot()) - 40) == set(replicas), 30, "both served")
                time.sleep(0.3 + 0.17 * n)  # a different phase of the 1 s resync cycle each round
                stopped = time.monotonic()
                stopping = threading.Thread(
                    target=subprocess.run,
                    args=(["docker", "stop", "-t", "10", victim],),
                    kwargs={"capture_output": True, "timeout": 60},
                )
                stopping.start()
                wait_for(
                    lambda server=server: server not in rendered_servers(p), 30, f"{victim} removed", interval=0.01
                )
                delays.append(time.monotonic() - stopped)
                stopping.join(60)
                run(["docker", "start", victim])
            wait_for(lambda: len(rendered_servers(p)) == 2, 30, "both web replicas back")
        resyncs = [int(ms) for ms in RESYNC_LINE.findall(p.logs()[mark:])]
        record("large host: resync (list) with 500 containers, median ms", statistics.median(resyncs))
        record("large host: resync (list) with 500 containers, max ms", max(resyncs))
        record("large host: stop-to-removal delay during resyncs, median s", round(statistics.median(delays), 3))
        record("large host: stop-to-removal delay during resyncs, max s", round(max(delays), 3))
        record("large host: requests", len(load.outcomes))
    finally:
        removing = time.monotonic()
        remove_fillers(p)
        record("large host: seconds to remove 500 fillers", round(time.monotonic() - removing, 1))
    failures = load.failures()
    assert not failures, f"{len(failures)} of {len(load.outcomes)} requests failed, e.g. {failures[:5]}"
    assert max(delays) < BOUND, f"a stop waited behind a resync: delays {[round(d, 2) for d in delays]} s"
