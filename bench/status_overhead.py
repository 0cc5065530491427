#!/usr/bin/env python3
"""What the status endpoints cost proxied traffic: wrk through three proxies that differ only there.

- off: DYNAMIC_NGINX_STATUS_LISTEN unset (the default);
- on: set, and nothing asks the endpoints;
- scraped: set, with /metrics fetched every second (a Prometheus at 15 times its
  usual rate) and the page every 5 s (one browser left open on it).

Each proxies to an nginx that returns its hostname, so the backend is never the
bottleneck and the proxies' own cost shows. On a shared machine the load drifts
from second to second, so by default each round loads the three at the same
time (one wrk each): whatever else runs hits all three alike, and the ratio
within a round compares them under one load. `--sequential` runs them back to
back instead, in an order that rotates each round. Per round and mode:
requests/s, the proxy container's CPU time per request (its cgroup: every
process in it; steadier than requests/s, which depend on what else got the
cores), and the status server's own CPU time. Prints each round and writes the
figures as JSON; asserts nothing about speed.

    python3 bench/status_overhead.py [--rounds 9] [--seconds 8] [--sequential] [--out bench/status_overhead.json]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("DYNAMIC_NGINX_IMAGE", "dynamic-nginx:test")
os.environ.setdefault("DYNAMIC_NGINX_BACKEND_IMAGE", "dynamic-nginx-backend:test")
from harness import IMAGE, Project, cgroup_cpu_seconds, free_port, run, wait_for  # noqa: E402
from probes import wrk  # noqa: E402
from scenarios import FAST_SITE, PLAIN  # noqa: E402

STATUS_PORT = 8081
MODES = ("off", "on", "scraped")
# (path, every so many seconds) of the scraped mode
SCRAPES = (("/metrics", 1.0), ("/", 5.0))

COMPOSE = """version: "3.8"
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80", "127.0.0.1:{status_port}:8081"]
    # wrk's rates open an upstream connection per request: reuse TIME_WAIT ports (as bench/run.py does).
    sysctls:
      net.ipv4.tcp_tw_reuse: "1"
{environment}    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - ./default.conf:/etc/nginx/conf.d/default.conf:ro
  fast:
    image: {plain}
    volumes:
      - ./fast.conf:/etc/nginx/conf.d/default.conf:ro
"""
SITE = """server {
    listen 80;
    access_log off;
    location / {
        proxy_pass http://fast.upstream;
    }
}
"""


def scrape(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """Fetch each of SCRAPES at its interval until stopped, as Prometheus and an open page would."""
    began = time.monotonic()
    due = dict.fromkeys((path for path, _ in SCRAPES), began)
    while not stop.is_set():
        for path, every in SCRAPES:
            if time.monotonic() < due[path]:
                continue
            due[path] += every
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                ok = conn.getresponse().status == 200
                conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
            counts["ok" if ok else "failed"] += 1
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def status_cpu_seconds(p: Project) -> float | None:
    """CPU time the status server has used (the child of supervisord's `status` program); None when none runs."""
    script = (
        "set -- $(cat /proc/$(supervisorctl pid status)/task/*/children 2>/dev/null); "
        '[ -n "$1" ] && grep -q status-server /proc/$1/cmdline && cut -d" " -f14,15 /proc/$1/stat'
    )
    out = run(["docker", "exec", p.proxy_id(), "sh", "-c", script], check=False).stdout.split()
    return (int(out[0]) + int(out[1])) / os.sysconf("SC_CLK_TCK") if len(out) == 2 else None


def one_round(
    projects: dict[str, Project], modes: tuple[str, ...], seconds: int, status_ports: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """wrk through each of `modes`' proxies at once (the scraper meanwhile for `scraped`); figures by mode."""
    counts = {"ok": 0, "failed": 0}
    stop = threading.Event()
    scraper = (
        threading.Thread(target=scrape, args=(status_ports["scraped"], stop, counts)) if "scraped" in modes else None
    )
    status_before = {mode: status_cpu_seconds(projects[mode]) for mode in modes}
    proxies = {mode: projects[mode].ids("proxy", full=True)[0] for mode in modes}
    figures: dict[str, dict[str, Any]] = {}

    def load(mode: str) -> None:
        proxy = proxies[mode]
        figures[mode] = wrk(projects[mode].port, seconds, "/", cpu=lambda: cgroup_cpu_seconds(proxy))

    threads = [threading.Thread(target=load, args=(mode,)) for mode in modes]
    if scraper:
        scraper.start()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 90)
    finally:
        stop.set()
        if scraper:
            scraper.join(10)
    for mode in modes:
        if mode not in figures:
            raise SystemExit(f"{mode}: wrk gave no figures")
        if figures[mode]["non_2xx"] or figures[mode]["socket_errors"]:
            raise SystemExit(f"{mode}: errors under load: {figures[mode]}")
        after, before = status_cpu_seconds(projects[mode]), status_before[mode]
        figures[mode]["status_server_cpu_s"] = (
            round(after - before, 3) if after is not None and before is not None else None
        )
        figures[mode]["scrapes_ok"] = counts["ok"] if mode == "scraped" else 0
        figures[mode]["scrapes_failed"] = counts["failed"] if mode == "scraped" else 0
    return figures


def spread(values: list[float]) -> dict[str, Any]:
    """Median, quartiles and range of per-round figures."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {
        "median": round(statistics.median(values), 3),
        "q1": round(q[0], 3),
        "q3": round(q[2], 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "rounds": [round(v, 3) for v in values],
    }


def summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        out[f"{mode}_rps"] = spread([r[mode]["rps"] for r in rounds])
        cpu = [r[mode]["cpu_us_per_request"] for r in rounds if r[mode]["cpu_us_per_request"]]
        out[f"{mode}_cpu_us_per_request"] = spread(cpu) if cpu else None
    for mode in ("on", "scraped"):
        # Throughput ratio within each round (1.0: unchanged), and CPU per request off/mode (1.0: unchanged).
        out[f"{mode}_over_off_rps"] = spread([r[mode]["rps"] / r["off"]["rps"] for r in rounds])
        both = [r for r in rounds if r[mode]["cpu_us_per_request"] and r["off"]["cpu_us_per_request"]]
        out[f"off_over_{mode}_cpu_per_request"] = (
            spread([r["off"]["cpu_us_per_request"] / r[mode]["cpu_us_per_request"] for r in both]) if both else None
        )
        used = [r[mode]["status_server_cpu_s"] for r in rounds if r[mode]["status_server_cpu_s"] is not None]
        out[f"{mode}_status_server_cpu_s_per_round"] = spread(used) if used else None
    scrapes = sum(r["scraped"]["scrapes_ok"] for r in rounds)
    out["scrapes_ok"] = scrapes
    out["scrapes_failed"] = sum(r["scraped"]["scrapes_failed"] for r in rounds)
    used = sum(r["scraped"]["status_server_cpu_s"] or 0.0 for r in rounds)
    out["status_server_cpu_ms_per_scrape"] = round(used / scrapes * 1000, 2) if scrapes else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--sequential", action="store_true", help="one proxy at a time, not the three at once")
    parser.add_argument("--out", type=Path, default=HERE / "status_overhead.json")
    args = parser.parse_args()
    if run(["docker", "image", "inspect", PLAIN], check=False).returncode != 0:
        run(["docker", "build", "--network", "host", "-t", PLAIN, str(HERE / "plain")], timeout=900)
    folder = Path(tempfile.mkdtemp(prefix="dynamic-nginx-status-overhead-"))
    status_ports = {mode: free_port() for mode in MODES}
    projects = {
        mode: Project(
            folder / mode,
            COMPOSE,
            {"default.conf": SITE, "fast.conf": FAST_SITE},
            values={
                "plain": PLAIN,
                "status_port": status_ports[mode],
                "environment": ""
                if mode == "off"
                else f'    environment:\n      DYNAMIC_NGINX_STATUS_LISTEN: "{STATUS_PORT}"\n',
            },
            prefix="dnbench",
        )
        for mode in MODES
    }
    rounds: list[dict[str, dict[str, Any]]] = []
    try:
        for p in projects.values():
            p.up(fast=2)
        for p in projects.values():
            p.wait_serving(p.ids("fast"), timeout=60)
        for mode in ("on", "scraped"):
            wait_for(lambda m=mode: status_cpu_seconds(projects[m]) is not None, 30, f"{mode}'s status server")
        for n in range(args.rounds):
            order = MODES[n % 3 :] + MODES[: n % 3]
            result: dict[str, dict[str, Any]] = {}
            for modes in [(mode,) for mode in order] if args.sequential else [MODES]:
                result.update(one_round(projects, modes, args.seconds, status_ports))
            for mode in order:
                print(
                    f"round {n + 1} {mode:>7}: {result[mode]['rps']:8.1f} requests/s, "
                    f"{result[mode]['cpu_us_per_request']} us CPU/request, "
                    f"status server {result[mode]['status_server_cpu_s']} s CPU",
                    flush=True,
                )
            rounds.append(result)
    finally:
        for p in projects.values():
            p.down()
    data = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "image": IMAGE,
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "three_at_once": not args.sequential,
        "load": "wrk -t2 -c32 on 127.0.0.1, proxied to 2 nginx replicas returning their hostname",
        "scraped_mode": {path: f"every {every:g} s" for path, every in SCRAPES},
        "summary": summary(rounds),
        "per_round": rounds,
        "load_average_at_end": os.getloadavg(),
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
