"""Faults an operator or Docker causes every day: signals to the container, a killed nginx,
an invalid setting, a port taken, a configuration that never validates. Each under load where
traffic is possible, each bounded in time."""

from __future__ import annotations

import datetime
import re
import threading
import time

from harness import IMAGE, PROXY, WEB, Load, Project, get, record, run, wait_for

# The site reads a folder the reloader does not watch (/srv/extra), so an edit there reaches
# nginx only through a signal: what the HUP tests need to tell a HUP's reload from the reloader's.
COMPOSE = (
    PROXY.replace(
        "      - ./conf.d:/etc/nginx/conf.d\n",
        "      - ./conf.d:/etc/nginx/conf.d\n      - ./extra:/srv/extra\n",
    )
    + WEB
)
SITE = """
server {
    listen 80;
    include /srv/extra/*.conf;
    location / {
        proxy_pass http://web.upstream;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
    }
}
"""
VERSION = 'location = /version {{ return 200 "{0}\\n"; }}\n'


def site(project) -> Project:
    p = project(COMPOSE, {"conf.d/default.conf": SITE, "extra/version.conf": VERSION.format("v1")})
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    return p


def spawned(p: Project) -> int:
    return p.logs().count("INFO spawned:")


def signal(p: Project, name: str) -> None:
    run(["docker", "kill", "-s", name, p.proxy_id()])


def exited(p: Project) -> str:
    """`exited N` once the proxy container has stopped, else ""."""
    state = run(["docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", p.proxy_id()]).stdout.strip()
    return state if state.startswith("exited") else ""


def test_hup_under_load_reloads_and_restarts_nothing(project):
    p = site(project)
    before = spawned(p)
    (p.folder / "extra" / "version.conf").write_text(VERSION.format("v2"))
    time.sleep(1.5)  # the reloader does not watch /srv/extra: nothing may apply the edit but the HUP
    assert get(p.port, "/version") == (200, "v1")
    with Load(p.port, max_requests=20_000, max_seconds=60) as load:
        time.sleep(1)
        signal(p, "HUP")
        wait_for(lambda: get(p.port, "/version") == (200, "v2"), 10, "the edit applied by the HUP")
        time.sleep(1)
    assert load.failures() == [], load.failures()[:5]
    record("HUP under load: requests, failed", (len(load.outcomes), len(load.failures())))
    assert spawned(p) == before, "a HUP must not restart any program"
    assert "reloader: INFO: SIGHUP: nginx -t, then reload" in p.logs()


def test_hup_with_an_invalid_file_keeps_the_old_configuration_serving(project):
    p = site(project)
    web = p.ids("web")
    before = spawned(p)
    (p.folder / "extra" / "broken.conf").write_text("this is not nginx;\n")
    with Load(p.port, max_requests=20_000, max_seconds=60) as load:
        time.sleep(1)
        signal(p, "HUP")
        wait_for(lambda: "nginx -t failed, not reloading" in p.logs(), 10, "the reloader's one line about nginx -t")
        signal(p, "HUP")  # asked again, it says why again
        wait_for(lambda: p.logs().count("nginx -t failed, not reloading") == 2, 10, "the line said again")
        time.sleep(1)
    assert load.failures() == [], load.failures()[:5]
    assert load.served_by() == set(web)
    record("HUP with an invalid file under load: requests, failed", (len(load.outcomes), len(load.failures())))
    lines = [line for line in p.logs().splitlines() if "nginx -t failed, not reloading" in line]
    assert all("/srv/extra/broken.conf:1" in line for line in lines), lines
    assert spawned(p) == before
    assert get(p.port, "/version") == (200, "v1")


def test_usr1_reopens_the_logs_and_fails_nothing(project):
    p = site(project)
    before = spawned(p)
    with Load(p.port, max_requests=20_000, max_seconds=60) as load:
        time.sleep(1)
        signal(p, "USR1")
        wait_for(lambda: "(SIGUSR1) received" in p.logs(), 10, "nginx's line about SIGUSR1")
        time.sleep(1)
    assert load.failures() == [], load.failures()[:5]
    assert "reopening logs" in p.logs()
    assert spawned(p) == before


def test_term_stops_fast_with_status_0(project):
    p = site(project)
    started = time.monotonic()
    signal(p, "TERM")
    wait_for(lambda: exited(p), 8, "the proxy to stop")
    took = time.monotonic() - started
    record("TERM: seconds until the container stopped", round(took, 2))
    assert exited(p) == "exited 0"  # nginx's own status on TERM, as with the official image
    # nginx's fast shutdown, not supervisord's graceful stop of it with QUIT.
    assert "signal 15 (SIGTERM) received" in p.logs()
    assert took < 5, f"took {took:.1f} s: supervisord stopped the programs one by one"


def test_quit_lets_a_request_in_flight_finish(project):
    p = site(project)
    answers: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: answers.append(get(p.port, "/?sleep=3", timeout=15)), daemon=True)
    slow.start()
    time.sleep(1)
    signal(p, "QUIT")
    slow.join(15)
    assert answers and answers[0][0] == 200, answers
    wait_for(lambda: exited(p), 15, "the proxy to stop")
    assert exited(p) == "exited 0"


def nginx_pids(p: Project, which: str) -> list[str]:
    """Pids of processes in the proxy whose title starts with `nginx: <which>`."""
    script = (
        "for c in /proc/[0-9]*/cmdline; do t=$(tr -d '\\0' <$c 2>/dev/null); "
        f"case $t in 'nginx: {which}'*) p=${{c#/proc/}}; echo ${{p%/cmdline}};; esac; done"
    )
    return p.exec("sh", "-c", script).stdout.split()


def kill_and_recover(project, which: str, label: str) -> None:
    """kill -9 the nginx processes titled `which` under load, add a replica meanwhile: nginx
    must serve again, with the current configuration, within 2 s."""
    p = site(project)
    first = p.ids("web")
    masters = nginx_pids(p, "master")
    assert len(masters) == 1, masters
    with Load(p.port, max_requests=20_000, max_seconds=90) as load:
        time.sleep(1)
        victims = nginx_pids(p, which)
        killed = time.monotonic()
        p.exec("sh", "-c", "kill -9 " + " ".join(victims))

        def new_master_answers() -> bool:
            now = nginx_pids(p, "master")
            return bool(now) and now != masters and get(p.port, "/version", timeout=2) == (200, "v1")

        wait_for(new_master_answers, 20, "a new nginx master answering", interval=0.02)
        recovered = time.monotonic() - killed
        p.up(web=2)
        p.wait_serving(p.ids("web"), timeout=30)
    failed = load.failures()
    last_failure = max((o.at for o in failed), default=killed) - killed
    record(f"kill -9 {label} under load: seconds until a new master answered", round(recovered, 2))
    record(f"kill -9 {label} under load: seconds from the kill to the last failed request", round(last_failure, 2))
    record(f"kill -9 {label} under load: requests, failed", (len(load.outcomes), len(failed)))
    assert last_failure < 3, f"requests failed until {last_failure:.2f} s after kill -9"
    # The bound is 2 s; 1 s of slack for a machine shared by several test runs.
    assert recovered < 3, f"nginx served again only {recovered:.2f} s after kill -9"
    assert len(p.ids("web")) == 2 and set(first) < set(p.ids("web"))
    assert nginx_pids(p, "worker"), "no workers"
    zombies = p.exec("sh", "-c", "grep -l '^State:.Z' /proc/[0-9]*/status || true").stdout.split()
    assert zombies == [], f"PID 1 left zombies: {zombies}"


def test_kill_9_of_the_nginx_master_recovers_within_2s(project):
    kill_and_recover(project, "master", "nginx master")


def test_kill_9_of_every_nginx_process_recovers_within_2s(project):
    kill_and_recover(project, "", "every nginx process")


def one_shot(project, compose: str, files: dict[str, str] | None = None) -> Project:
    p = project(compose, files or {})
    p.compose("up", "-d", "--no-recreate", timeout=300)
    return p


def test_invalid_setting_stops_the_container_before_anything_serves(project):
    compose = PROXY.replace("    volumes:\n", "    environment:\n      DYNAMIC_NGINX_SCOPE: bogus\n    volumes:\n")
    p = one_shot(project, compose)
    wait_for(lambda: exited(p), 10, "the proxy to stop")
    assert exited(p) == "exited 2"
    logs = p.logs()
    assert "DYNAMIC_NGINX_SCOPE='bogus' must be one of: project, all" in logs
    assert "start worker process" not in logs  # nginx never started
    assert logs.count("spawned: 'watcher'") <= 1, "respawned"


def test_port_taken_stops_the_container_saying_why(project):
    compose = f"""
version: "3.8"
services:
  holder:
    image: {IMAGE}
    command: ["python3", "-m", "http.server", "80"]
  proxy:
    image: {IMAGE}
    network_mode: "service:holder"
    depends_on: [holder]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
"""
    p = one_shot(project, compose)
    started = time.monotonic()
    wait_for(lambda: exited(p), 90, "the proxy to stop")
    record("port taken: seconds until the container stopped", round(time.monotonic() - started, 1))
    assert exited(p) == "exited 1"
    logs = p.logs()
    assert "Address already in use" in logs
    lines = [line for line in logs.splitlines() if "dynamic-nginx: stopping the container:" in line]
    assert len(lines) == 1 and "nginx exited 5 times within 60 s, so it cannot run here" in lines[0], lines


def test_config_that_never_validates_stops_the_container_after_the_bound(project):
    files = {"conf.d/default.conf": "server { listen 80; }\n", "conf.d/broken.conf": "this is not nginx;\n"}
    p = one_shot(project, PROXY, files)
    wait_for(lambda: "nginx cannot start until it is fixed" in p.logs(), 20, "the start-up check's line")
    started = time.monotonic()
    wait_for(lambda: exited(p), 60, "the proxy to stop")
    record(
        "config never valid: seconds from the first error until the container stopped",
        round(time.monotonic() - started, 1),
    )
    assert exited(p) == "exited 1"
    lines = [line for line in p.logs().splitlines() if "dynamic-nginx: stopping the container:" in line]
    assert len(lines) == 1, lines
    assert "nginx -t still fails after 30 s, so nginx cannot start:" in lines[0]
    assert "/etc/nginx/conf.d/broken.conf:1" in lines[0]


def test_a_program_that_keeps_dying_is_restarted_with_backoff_then_stops_the_container(project):
    p = site(project)
    # Break the reloader for good (as a bad disk or a broken upgrade would), then kill it:
    # every restart exits at once.
    p.exec(
        "sh",
        "-c",
        "f=/usr/lib/python3/dist-packages/dynamic_nginx/reloader.py;"
        " sed -i '1i import sys; sys.exit(3)' $f; rm -rf $(dirname $f)/__pycache__/reloader.*",
    )
    p.exec("sh", "-c", "kill -9 $(cat /run/dynamic-nginx/reloader.pid)")
    started = time.monotonic()
    with Load(p.port, clients=2, max_requests=20_000, max_seconds=90) as load:
        wait_for(
            lambda: "dynamic-nginx: stopping the container:" in p.logs(),
            80,
            "the container to stop after supervisord gives up on the reloader",
            interval=0.2,
        )
        gave_up = time.monotonic()
        wait_for(lambda: exited(p), 20, "the proxy to stop")
    stopped = gave_up - started
    record("reloader dying at every start: seconds until the container stopped", round(stopped, 1))
    assert exited(p) == "exited 1"
    logs = p.logs()
    respawns = logs.count("spawned: 'reloader'") - 1
    # supervisord waits 1 s longer before each new try: with startretries=5 that is 1+2+3+4+5 s.
    assert respawns <= 6, f"respawned {respawns} times: no backoff"
    assert stopped >= 10, f"gave up after {stopped:.1f} s: no backoff"
    assert "gave up: reloader entered FATAL state" in logs
    lines = [line for line in logs.splitlines() if "dynamic-nginx: stopping the container:" in line]
    assert len(lines) == 1 and "supervisord gave up on reloader" in lines[0], lines
    # nginx served all the while the reloader was away, until supervisord gave up (its log line's
    # time, on the load's clock: the stop that follows ends the load's connections).
    stamp = re.search(r"^(\S+ \S+),(\d+) INFO gave up: reloader", logs, re.M)
    assert stamp, "supervisord's FATAL line"
    fatal_at = (
        datetime.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.UTC).timestamp()
        + int(stamp.group(2)) / 1000
    )
    fatal_at += time.monotonic() - time.time()
    served = [o for o in load.snapshot() if o.at < fatal_at]
    assert served and all(o.status == 200 for o in served), [o for o in served if o.status != 200][:5]
