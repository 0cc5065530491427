"""Faults that come from the backends: signals sent to a replica, and a replica that crash-loops.

A `kill` event takes a replica out only when its signal is the way Docker stops
that container; a replica Docker still runs after its stop grace period is
served again; a crash-looping service costs a bounded number of reloads. All
under load, every wait bounded.
"""

from __future__ import annotations

import time

import pytest
from harness import PROXY, SITE, WEB, Load, Project, record, run, wait_for

COMPOSE = PROXY + WEB
IGNORES_TERM = (
    WEB
    + """    environment:
      IGNORE_TERM: "1"
    stop_grace_period: 2s
"""
)
GRACE = 2.0
# A service that crash-loops under its restart policy: it listens, then exits half a second later.
FLAPPY = """  flappy:
    image: {backend}
    restart: always
    command: ["timeout", "0.5", "python3", "-u", "/app.py"]
"""
TWO_SITES = """
server {
    listen 80;
    location / {
        proxy_pass http://web.upstream;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
    }
    location /flappy {
        proxy_pass http://flappy.upstream;
    }
}
"""
FLAP_PERIOD = 20.0
FLAP_STARTS = 3  # starts within 30 s that make a container flapping (docs/design.md, "Crash loops")


def started(project, compose: str, files: dict[str, str] | None = None) -> tuple[Project, list[str]]:
    """A proxy and two web replicas, both served."""
    p = project(compose, files or {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=2)
    replicas = p.ids("web")
    p.wait_serving(replicas)
    wait_for(lambda: "reloader: INFO: watching" in p.logs(), 10, "the reloader to be up")
    return p, replicas


def name_of(short_id: str) -> str:
    return run(["docker", "inspect", "-f", "{{.Name}}", short_id]).stdout.strip().lstrip("/")


def assert_nothing_failed(load: Load, least: int = 50) -> None:
    outcomes = load.snapshot()
    failures = load.failures()
    assert len(outcomes) >= least, f"the load ran only {len(outcomes)} requests"
    assert not failures, f"{len(failures)} of {len(outcomes)} requests failed, e.g. {failures[:5]}"


@pytest.mark.parametrize(
    "signal",
    [
        pytest.param("QUIT", id="QUIT (a thread dump) keeps the replica in"),
        pytest.param("USR1", id="USR1 (reopen logs) keeps the replica in"),
        pytest.param("HUP", id="HUP (reload) keeps the replica in"),
    ],
)
def test_a_signal_that_does_not_stop_the_container_changes_nothing(project, signal):
    p, (first, second) = started(project, COMPOSE)
    before = p.reloads()
    with Load(p.port, clients=3, max_requests=5000, max_seconds=60) as load:
        time.sleep(0.5)
        run(["docker", "kill", "-s", signal, first])
        time.sleep(2.5)  # time enough for a wrong removal and its reload
        mark = len(load.snapshot())
        time.sleep(1)
        served = load.served_by(mark)
    record(f"docker kill -s {signal} to a replica: requests", len(load.outcomes))
    assert_nothing_failed(load)
    assert served == {first, second}, f"after SIG{signal} only {sorted(served)} served"
    assert p.reloads() == before


def test_a_replica_that_ignores_sigterm_leaves_at_once_and_is_back_after_its_grace_period(project):
    p, (first, second) = started(project, PROXY + IGNORES_TERM)
    assert run(["docker", "inspect", "-f", "{{.Config.StopTimeout}}", first]).stdout.strip() == "2"
    with Load(p.port, clients=3, max_requests=10000, max_seconds=90) as load:
        time.sleep(0.5)
        killed = time.monotonic()
        run(["docker", "kill", "-s", "TERM", first])
        wait_for(lambda: load.served_by(len(load.snapshot()) - 10) == {second}, 10, "the signalled replica out")
        out = time.monotonic() - killed
        gone = len(load.snapshot())
        wait_for(lambda: first in load.served_by(gone), 20, "it to be back")
        back = time.monotonic() - killed
    record("kill -s TERM to a replica that ignores it: seconds until out", round(out, 2))
    record("kill -s TERM to a replica that ignores it: seconds until back in", round(back, 2))
    assert_nothing_failed(load)
    # Out before its grace period ends; back only after it (Docker could still have ended it until then).
    assert out < GRACE, f"it left {out:.2f} s after the signal"
    assert back >= GRACE, f"it was back {back:.2f} s after the signal, inside its {GRACE} s grace period"
    logs = p.logs()
    assert f"{name_of(first)} received SIGTERM" in logs, logs[-2000:]
    assert f"{name_of(first)} still runs" in logs, logs[-2000:]


def test_docker_stop_of_a_replica_that_ignores_sigterm_takes_it_out_for_good(project):
    p, (first, second) = started(project, PROXY + IGNORES_TERM)
    with Load(p.port, clients=3, max_requests=10000, max_seconds=90) as load:
        time.sleep(0.5)
        stopping = time.monotonic()
        stopper = run(["docker", "stop", first], timeout=30)  # SIGTERM, ignored; SIGKILL after 2 s
        stopped = time.monotonic() - stopping
        mark = len(load.snapshot())
        time.sleep(GRACE + 2)  # past the moment a replica still running would be back
    record("docker stop of a replica that ignores SIGTERM: seconds to stop", round(stopped, 2))
    assert stopper.returncode == 0
    assert stopped >= GRACE, "the replica did not ignore SIGTERM"
    assert_nothing_failed(load)
    assert load.served_by(mark) == {second}
    assert f"{name_of(first)} still runs" not in p.logs()


def test_a_crash_looping_service_costs_bounded_reloads_and_the_healthy_one_keeps_serving(project):
    p, (first, second) = started(project, PROXY + WEB + FLAPPY, {"conf.d/default.conf": TWO_SITES})
    before = p.reloads()
    with Load(p.port, clients=2, max_requests=20000, max_seconds=FLAP_PERIOD + 30) as load:
        began = time.monotonic()
        p.up("flappy")
        flappy = p.ids("flappy", stopped=True)[0]
        time.sleep(max(0.0, FLAP_PERIOD - (time.monotonic() - began)))
        reloads = p.reloads() - before
        restarts = int(run(["docker", "inspect", "-f", "{{.RestartCount}}", flappy]).stdout.strip())
        mark = len(load.snapshot())
        time.sleep(1)
        served = load.served_by(mark)
    record("crash-looping service over 20 s: restarts", restarts)
    record("crash-looping service over 20 s: reloads", reloads)
    assert restarts >= 4, f"the service restarted only {restarts} times: it did not crash-loop"
    assert_nothing_failed(load)
    assert served == {first, second}
    # Before it is flapping each run costs at most two reloads (in, out); once flapping it is never
    # added again, as it never runs through its hold. One more for slack. (The issue asks for at
    # most one every 2 s: this is tighter.)
    bound = 2 * (FLAP_STARTS - 1) + 1
    assert reloads <= bound, f"{reloads} reloads in {FLAP_PERIOD:.0f} s from {restarts} restarts"
    assert f"{name_of(flappy)} is flapping" in p.logs()
