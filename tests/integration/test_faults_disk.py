"""Disk faults under load: a full conf.d, a full run dir.

Each proxy gets a small tmpfs (compose `tmpfs:` with `size=`) where the fault
goes, filled by a file that is not configuration, so the disk is really full
(ENOSPC) and nothing else about the proxy changes.
"""

from __future__ import annotations

import time

from harness import PROXY, SITE, WEB, Load, Project, record, wait_for

UPSTREAMS = "/etc/nginx/conf.d/dynamic-nginx-upstreams.conf"

# conf.d is a 1 MiB tmpfs; the user's site is a file mounted into it.
FULL_CONF_D = (
    """
version: "3.8"
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - ./site.conf:/etc/nginx/conf.d/default.conf:ro
    tmpfs:
      - /etc/nginx/conf.d:size=1m
"""
    + WEB
)

# The run dir, where the reloader keeps its last good copies, is a 1 MiB tmpfs.
FULL_RUN_DIR = (
    PROXY
    + """    tmpfs:
      - /run/dynamic-nginx:size=1m
"""
    + WEB
)


def fill(p: Project, folder: str) -> None:
    """Fill the tmpfs at folder with a file nginx never reads; ENOSPC ends the write."""
    p.exec("sh", "-c", f"head -c 4m /dev/zero > {folder}/filler.bin", check=False)
    free = p.exec("sh", "-c", f"df -k {folder} | tail -1").stdout.split()
    assert free[3] == "0", f"{folder} is not full: {free}"


def lines_with(p: Project, text: str) -> list[str]:
    return [line for line in p.logs().splitlines() if text in line]


def test_full_conf_d_keeps_serving_and_catches_up_once_space_is_freed(project):
    p = project(FULL_CONF_D, {"site.conf": SITE.format(upstream="web.upstream")})
    p.up(web=1)
    old = p.ids("web")
    p.wait_serving(old)
    error = f"cannot write {UPSTREAMS}: [Errno 28] No space left on device"
    with Load(p.port, clients=4, max_seconds=120) as load:
        time.sleep(0.5)
        fill(p, "/etc/nginx/conf.d")
        p.up(web=2)
        new = sorted(set(p.ids("web")) - set(old))
        wait_for(lambda: lines_with(p, error), 20, "the write error in the log")
        mark = len(load.snapshot())
        time.sleep(4)  # the watcher retries every second meanwhile
        assert load.served_by(mark) == set(old), "the old replica keeps serving"
        errors = lines_with(p, error)
        assert len(errors) == 1, errors  # once, not at every retry
        assert errors[0].endswith("; nginx keeps its current configuration; retrying"), errors
        assert not lines_with(p, "cannot reach Docker"), "a full disk is not a Docker problem"

        freed = time.monotonic()
        p.exec("rm", "/etc/nginx/conf.d/filler.bin")  # no Docker event follows: only the retry helps
        mark = len(load.snapshot())
        wait_for(
            lambda: load.served_by(mark) >= set(new), 20, "the new replica served after space was freed", interval=0.05
        )
        recovered = time.monotonic() - freed
        time.sleep(0.5)
    record("full conf.d: seconds from freeing space to the new replica served", round(recovered, 2))
    record("full conf.d: requests", len(load.outcomes))
    failures = load.failures()
    assert len(load.outcomes) >= 100, f"the load ran only {len(load.outcomes)} requests"
    assert not failures, f"{len(failures)} of {len(load.outcomes)} requests failed, e.g. {failures[:5]}"
    assert recovered < 10, f"took {recovered:.1f}s after space was freed (retries are every second)"
    assert lines_with(p, "files in /etc/nginx/conf.d can be written again")
    assert "filler.bin" not in p.exec("ls", "-a", "/etc/nginx/conf.d").stdout
    assert not [n for n in p.exec("ls", "-a", "/etc/nginx/conf.d").stdout.split() if n.endswith(".tmp")]


def test_full_run_dir_does_not_stop_reloads(project):
    p = project(FULL_RUN_DIR, {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    with Load(p.port, clients=4, max_seconds=120) as load:
        time.sleep(0.5)
        fill(p, "/run/dynamic-nginx")
        before = p.reloads()
        started = time.monotonic()
        p.up(web=2)
        two = p.ids("web")
        mark = len(load.snapshot())
        wait_for(lambda: load.served_by(mark) == set(two), 20, "both replicas served with the run dir full")
        record(
            "full run dir: seconds from `up --scale` returning to both replicas served",
            round(time.monotonic() - started, 2),
        )
        p.up(web=3)
        three = p.ids("web")
        mark = len(load.snapshot())
        wait_for(lambda: load.served_by(mark) == set(three), 20, "three replicas served with the run dir full")
        time.sleep(0.5)
    assert p.reloads() > before
    warnings = lines_with(p, "cannot keep a last good copy in /run/dynamic-nginx/good/")
    assert len(warnings) == 1, warnings  # once, not at every reload
    assert "[Errno 28] No space left on device; reloading anyway" in warnings[0], warnings
    assert "exited: reloader" not in p.logs(), "the reloader crashed"
    failures = load.failures()
    record("full run dir: requests", len(load.outcomes))
    assert len(load.outcomes) >= 100, f"the load ran only {len(load.outcomes)} requests"
    assert not failures, f"{len(failures)} of {len(load.outcomes)} requests failed, e.g. {failures[:5]}"
