"""The seed scenario end to end: the real image, real compose projects, HTTP through the proxy."""

from __future__ import annotations

import time

from harness import PROXY, WEB, Project, get, record, rendered_servers, run, tally, wait_for
from harness import SITE as SITE_FOR

COMPOSE = PROXY + WEB
SITE = SITE_FOR.format(upstream="web.upstream")

# The config users have before adopting us: Docker DNS, resolved at each (re)load.
PLAIN_SITE = """
server {
    listen 80;
    location / {
        proxy_pass http://web:8000;
    }
}
"""


def site_project(project, site: str = SITE, compose: str = COMPOSE) -> Project:
    return project(compose, {"conf.d/default.conf": site})


def test_scale_up_spreads_over_all_replicas(project):
    p = site_project(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    before = p.reloads()
    started = time.monotonic()
    p.up(web=3)
    scaled = time.monotonic()
    waited = p.wait_serving(p.ids("web"))
    record("scale 1->3: seconds from `up --scale` returning to all replicas served", round(waited, 2))
    record("scale 1->3: seconds for `up --scale` itself", round(scaled - started, 2))
    record("scale 1->3: reloads", p.reloads() - before)
    counts = tally(p.port, 300)
    assert set(counts) == set(p.ids("web")), counts
    assert all(n >= 60 for n in counts.values()), f"uneven spread over 300 requests: {counts}"


def test_scale_down_to_survivor_then_zero_then_back(project):
    p = site_project(project)
    p.up(web=3)
    p.wait_serving(p.ids("web"))
    p.up(web=1)
    survivor = p.ids("web")
    assert len(survivor) == 1
    p.wait_serving(survivor)
    assert tally(p.port, 100) == {survivor[0]: 100}

    p.up(web=0)
    wait_for(lambda: get(p.port)[0] == 503, 20, "503 with no replica")
    assert tally(p.port, 20) == {"status:503": 20}
    state = run(["docker", "inspect", "-f", "{{.State.Status}}", p.proxy_id()]).stdout.strip()
    assert state == "running"

    p.up(web=2)
    p.wait_serving(p.ids("web"))
    assert len(p.ids("web")) == 2


def test_unchanged_config_with_service_dns_name_keeps_working_and_spreads(project):
    compose = COMPOSE.replace(
        "      - ./conf.d:/etc/nginx/conf.d\n", "      - ./conf.d:/etc/nginx/conf.d\n    depends_on: [web]\n"
    )
    p = site_project(project, PLAIN_SITE, compose)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    p.up(web=3)
    # Our reload after the new replicas appear makes nginx resolve `web` again.
    p.wait_serving(p.ids("web"), requests=60)


def test_broken_file_blocks_reloads_until_removed(project):
    p = site_project(project)
    p.up(web=1)
    first = p.ids("web")
    p.wait_serving(first)

    (p.folder / "conf.d" / "broken.conf").write_text("this is not { nginx\n")
    wait_for(lambda: "broken.conf" in p.logs(), 15, "the nginx -t error naming broken.conf")
    error_lines = [line for line in p.logs().splitlines() if "nginx -t failed" in line]
    assert error_lines and "broken.conf" in error_lines[-1], error_lines
    reloads_while_broken = p.reloads()

    p.up(web=2)  # the watcher renders the new replica; nothing may reload
    new = sorted(set(p.ids("web")) - set(first))
    wait_for(lambda: len(rendered_servers(p)) == 2, 15, "the new replica rendered")
    time.sleep(2)  # the reloader's debounce is 1 s at most: give it every chance to misbehave
    assert tally(p.port, 50) == {first[0]: 50}
    assert p.reloads() == reloads_while_broken

    (p.folder / "conf.d" / "broken.conf").unlink()
    p.wait_serving(first + new)


def test_killed_watcher_is_restarted_and_catches_up(project):
    p = site_project(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    pid = p.exec("supervisorctl", "pid", "watcher").stdout.strip()
    assert pid.isdigit(), pid
    p.exec("sh", "-c", f"kill -9 {pid}")
    p.up(web=3)
    p.wait_serving(p.ids("web"), timeout=20)
    new_pid = p.exec("supervisorctl", "pid", "watcher").stdout.strip()
    assert new_pid.isdigit() and new_pid != pid
    assert "exited: watcher (terminated by SIGKILL" in p.logs()


def test_killed_reloader_is_restarted_and_catches_up(project):
    p = site_project(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    pid = p.exec("supervisorctl", "pid", "reloader").stdout.strip()
    p.exec("sh", "-c", f"kill -9 {pid}")
    p.up(web=2)
    p.wait_serving(p.ids("web"), timeout=20)


def test_first_answer_already_comes_from_a_replica(project):
    p = site_project(project)
    p.up("web", web=2)
    expected = set(p.ids("web"))
    p.up("proxy")
    status, body = wait_for(
        lambda: (lambda r: r if r[0] else None)(get(p.port, timeout=2)), 20, "the proxy's first answer", interval=0.01
    )
    assert status == 200 and body in expected, (status, body)


def test_docker_stop_shuts_down_cleanly(project):
    p = site_project(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    proxy = p.proxy_id()
    run(["docker", "stop", proxy], timeout=30)
    exit_code = run(["docker", "inspect", "-f", "{{.State.ExitCode}}", proxy]).stdout.strip()
    # 137 would mean Docker had to SIGKILL it after the 10 s grace period.
    assert exit_code == "0"
    logs = p.logs()
    for program in ("nginx", "watcher", "reloader"):
        assert f"stopped: {program}" in logs, program


def test_every_program_logs_to_docker_logs(project):
    p = site_project(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    expected = [
        "watcher: INFO: first render: web.upstream=1",
        "watcher: INFO: proxy container",  # the long-running watcher, not only the first render
        "reloader: INFO: watching /etc/nginx",
        "start worker process",  # nginx's error log
        '"GET / HTTP/1.1" 200',  # nginx's access log
        "INFO spawned: 'nginx'",  # supervisord
    ]
    wait_for(lambda: all(line in p.logs() for line in expected), 10, f"all of {expected} in docker logs")


def test_scale_to_ten_is_coalesced_into_few_reloads(project):
    p = site_project(project)
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    before = p.reloads()
    p.up(web=10)
    p.wait_serving(p.ids("web"), timeout=30, requests=40)
    count = p.reloads() - before
    record("scale 1->10: reloads", count)
    record("watcher RSS KiB with 10 replicas", p.rss_kib("watcher"))
    record("reloader RSS KiB with 10 replicas", p.rss_kib("reloader"))
    assert 1 <= count <= 10
