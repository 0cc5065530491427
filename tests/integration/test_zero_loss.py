"""Scale and roll out under load and lose nothing; serve only healthy replicas.

The backend stops accepting connections the moment it gets SIGTERM and
finishes the requests in flight: the worst realistic case for a proxy that
learns of a stopping replica only when it has exited.
"""

from __future__ import annotations

import threading
import time

from harness import PROXY, ROOT, WEB, Load, Project, get, record, run, tally, wait_for
from harness import SITE as SITE_FOR

COMPOSE = PROXY + WEB

HEALTHY_WHEN_FILE = """
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 1s
      timeout: 1s
      retries: 1
"""

SITE = SITE_FOR.format(upstream="web.upstream")


def make(project, compose: str = COMPOSE) -> Project:
    return project(compose, {"conf.d/default.conf": SITE})


def assert_nothing_lost(load: Load, least: int = 100) -> None:
    outcomes = load.snapshot()
    failures = load.failures()
    assert len(outcomes) >= least, f"the load ran only {len(outcomes)} requests"
    assert not failures, f"{len(failures)} of {len(outcomes)} requests failed, e.g. {failures[:5]}"


def test_scale_4_to_1_to_3_under_load_loses_nothing(project):
    p = make(project)
    p.up(web=4)
    p.wait_serving(p.ids("web"))
    with Load(p.port, clients=4) as load:
        time.sleep(1)
        p.up(web=1)
        survivor = p.ids("web")
        wait_for(lambda: load.served_by(len(load.snapshot()) - 20) == set(survivor), 20, "only the survivor")
        p.up(web=3)
        replicas = p.ids("web")
        mark = len(load.snapshot())
        wait_for(lambda: load.served_by(mark) == set(replicas), 20, "all three under load")
        time.sleep(1)
    record("scale 4->1->3 under load: requests", len(load.outcomes))
    record("scale 4->1->3 under load: stale keep-alive retries", load.stale_retries)
    assert_nothing_lost(load)


def test_one_at_a_time_rollout_under_load_loses_nothing_and_never_stalls(project):
    p = make(project)
    p.up(web=3)
    old = p.ids("web")
    p.wait_serving(old)
    with Load(p.port, clients=4) as load:
        # What rollout tools for compose do: one more, wait, stop an old one, repeat.
        result = run(
            ["bash", str(ROOT / "scripts" / "rollout"), "-p", p.name, "-f", str(p.compose_file), "web"], timeout=300
        )
        new = p.ids("web")
        mark = len(load.snapshot())
        wait_for(lambda: load.served_by(mark) == set(new), 20, "the new replicas")
    assert result.stdout.count("rollout: replaced") == 3, result.stdout
    assert len(new) == 3 and not set(new) & set(old)
    slowest = max(o.seconds for o in load.snapshot())
    record("rollout under load: requests", len(load.outcomes))
    record("rollout under load: slowest request seconds", round(slowest, 3))
    assert_nothing_lost(load)
    assert slowest < 1.0, f"a request took {slowest:.2f} s"


def test_only_healthy_replicas_serve(project):
    compose = COMPOSE + HEALTHY_WHEN_FILE
    p = make(project, compose)
    p.up(web=2)
    first, second = p.ids("web")
    # Both health checks are still `starting`: nobody may get traffic.
    wait_for(lambda: get(p.port)[0] == 503, 20, "503 while both are starting")
    run(["docker", "exec", first, "touch", "/tmp/healthy"])
    p.wait_serving([first])
    assert tally(p.port, 30) == {first: 30}
    run(["docker", "exec", second, "touch", "/tmp/healthy"])
    p.wait_serving([first, second])
    run(["docker", "exec", first, "rm", "/tmp/healthy"])  # turns unhealthy
    p.wait_serving([second])
    assert tally(p.port, 30) == {second: 30}


def test_health_gating_opt_out_serves_while_starting(project):
    compose = (
        COMPOSE
        + HEALTHY_WHEN_FILE
        + """    labels:
      dynamic-nginx.health_gating: "false"
"""
    )
    p = make(project, compose)
    p.up(web=1)
    p.wait_serving(p.ids("web"))


def test_pause_takes_out_and_unpause_puts_back_and_hup_changes_nothing(project):
    p = make(project)
    p.up(web=2)
    first, second = p.ids("web")
    p.wait_serving([first, second])
    run(["docker", "pause", first])
    p.wait_serving([second])
    run(["docker", "unpause", first])
    p.wait_serving([first, second])
    before = p.reloads()
    run(["docker", "kill", "-s", "HUP", first])
    time.sleep(2)  # time enough for a wrong removal and its reload
    assert p.reloads() == before
    assert set(tally(p.port, 20)) == {first, second}


def test_scale_1_to_20_serves_all_with_at_most_3_reloads(project):
    p = make(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    wait_for(lambda: "reloader: INFO: watching" in p.logs(), 10, "the reloader to be up")
    before = p.reloads()
    p.up(web=20)
    p.wait_serving(p.ids("web"), timeout=40, requests=60)
    time.sleep(3)  # let any trailing reload happen before counting
    count = p.reloads() - before
    record("scale 1->20: reloads", count)
    assert 1 <= count <= 3, count


def test_restarted_by_its_restart_policy_comes_back(project):
    compose = (
        COMPOSE
        + """    restart: always
"""
    )
    p = make(project, compose)
    p.up(web=2)
    first, second = p.ids("web")
    p.wait_serving([first, second])
    # The process exits by itself: die, then the policy's start.
    run(["docker", "exec", first, "python3", "-c", "import os, signal; os.kill(1, signal.SIGTERM)"])
    wait_for(
        lambda: run(["docker", "inspect", "-f", "{{.RestartCount}}", first]).stdout.strip() != "0",
        20,
        "the restart policy to restart it",
    )
    p.wait_serving([first, second])


def test_docker_restart_takes_out_then_puts_back(project):
    p = make(project)
    p.up(web=2)
    first, second = p.ids("web")
    p.wait_serving([first, second])
    # kill (TERM) marks it as stopping; its start afterwards must clear that.
    run(["docker", "restart", first])
    p.wait_serving([first, second])
    assert "web.upstream=1" in p.logs()  # it was out in between


def test_force_recreate_replaces_every_replica_at_once(project):
    """Documents the gap the README warns about: compose stops every old
    replica before the new ones serve. Meanwhile the proxy answers 502 (the
    last old replicas refuse connections before the reload takes them out)
    and then 503 (no replica at all); it never drops a client connection, and
    serves the new replicas right after."""
    p = make(project)
    p.up(web=3)
    old = p.ids("web")
    p.wait_serving(old)
    with Load(p.port, clients=4) as load:
        time.sleep(0.5)
        p.compose("up", "-d", "--force-recreate", "--scale=web=3", "web")
        new = p.ids("web")
        mark = len(load.snapshot())
        wait_for(lambda: load.served_by(mark) == set(new), 20, "the recreated replicas")
    assert not set(new) & set(old)
    failures = load.failures()
    statuses = {o.status for o in failures}
    record("force-recreate of 3 replicas under load: failed requests", len(failures))
    record("force-recreate of 3 replicas under load: requests", len(load.outcomes))
    if failures:
        record(
            "force-recreate of 3 replicas under load: seconds of failures",
            round(max(o.at for o in failures) - min(o.at for o in failures), 2),
        )
    assert statuses <= {502, 503}, statuses


def shutting_down_workers(p: Project) -> int:
    out = p.exec("sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true").stdout
    return out.count("worker process is shutting down")


def test_old_worker_generations_are_bounded_by_worker_shutdown_timeout(project):
    compose = COMPOSE.replace(
        "    volumes:\n", "    environment:\n      DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT: 2s\n    volumes:\n", 1
    )
    p = make(project, compose)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    slow: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: slow.append(get(p.port, "/?sleep=9", timeout=15)), daemon=True)
    thread.start()
    time.sleep(1)
    p.up(web=2)  # a reload while the slow request holds an old worker
    wait_for(lambda: shutting_down_workers(p) > 0, 10, "an old worker generation draining")
    # Without the bound it would live until the 9 s request ends.
    wait_for(lambda: shutting_down_workers(p) == 0, 6, "the old generation to be gone after 2 s")
    thread.join(15)
    assert slow and slow[0][0] != 200, slow  # the bound cut the slow request short


def test_a_replica_joins_once_its_port_accepts_connections(project):
    compose = (
        COMPOSE
        + """    command: ["sh", "-c", "sleep 2; exec python3 -u /app.py"]
"""
    )
    p = make(project, compose)
    p.up(web=1)
    p.wait_serving(p.ids("web"), timeout=30)
    with Load(p.port, clients=2) as load:
        p.up(web=2)
        new = sorted(set(p.ids("web")))
        mark = len(load.snapshot())
        wait_for(lambda: load.served_by(mark) == set(new), 30, "the slow-to-listen replica")
    assert_nothing_lost(load, least=20)
    logs = p.logs()
    assert "does not accept connections yet; it joins when it does" in logs
    # nginx never tried it early: no refused connect, no server marked failed.
    assert "temporarily disabled" not in logs and "Connection refused" not in logs
