#!/usr/bin/env python3
"""The status listener's cost to proxied traffic: the same load through a proxy
with DYNAMIC_NGINX_STATUS_LISTEN set (and /metrics, /status.json and the page
fetched every half second meanwhile, a busy Prometheus and a reader) and through
one without it; rounds alternate between the two so the machine's drifting load
hits both alike. Prints each round, the medians and the ratio on/off; asserts
nothing about speed.

    python3 bench/status_overhead.py [--rounds 5] [--seconds 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
os.environ.setdefault("DYNAMIC_NGINX_IMAGE", "dynamic-nginx:test")
os.environ.setdefault("DYNAMIC_NGINX_BACKEND_IMAGE", "dynamic-nginx-backend:test")
from harness import PROXY, SITE, WEB, Load, Project, free_port, wait_for  # noqa: E402

STATUS_PORT = 8081
SCRAPE_PATHS = ("/metrics", "/status.json", "/")


def compose(status_port: int, on: bool) -> str:
    text = PROXY.replace(
        'ports: ["127.0.0.1:{port}:80"]', f'ports: ["127.0.0.1:{{port}}:80", "127.0.0.1:{status_port}:{STATUS_PORT}"]'
    )
    if on:
        text += f'    environment:\n      DYNAMIC_NGINX_STATUS_LISTEN: "{STATUS_PORT}"\n'
    return text + WEB


def scrape(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """Fetch the three endpoints every half second until stopped, as a scraper would."""
    while not stop.wait(0.5):
        for path in SCRAPE_PATHS:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                ok = conn.getresponse().status == 200
                conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
            counts["ok" if ok else "failed"] += 1


def one_round(project: Project, seconds: float, status_port: int | None) -> tuple[float, dict[str, int]]:
    """Requests per second through the proxy for `seconds` (errors fail the run)."""
    counts = {"ok": 0, "failed": 0}
    stop = threading.Event()
    scraper = threading.Thread(target=scrape, args=(status_port, stop, counts)) if status_port else None
    if scraper:
        scraper.start()
    began = time.monotonic()
    with Load(project.port, clients=4, path="/", max_requests=500_000, max_seconds=seconds) as load:
        time.sleep(seconds)
    took = time.monotonic() - began
    stop.set()
    if scraper:
        scraper.join(10)
    summary = load.summary()
    if summary["non_2xx"] or summary["connection_errors"]:
        raise SystemExit(f"errors under load: {summary}")
    return summary["requests"] / took, counts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dynamic-nginx-status-overhead-"))
    ports = {"on": free_port(), "off": free_port()}
    projects = {
        mode: Project(
            folder / mode,
            compose(ports[mode], mode == "on"),
            {"conf.d/default.conf": SITE.format(upstream="web.upstream")},
        )
        for mode in ("on", "off")
    }
    rates: dict[str, list[float]] = {"on": [], "off": []}
    scrapes = {"ok": 0, "failed": 0}
    try:
        for p in projects.values():
            p.up(web=2)
        for p in projects.values():
            p.wait_serving(p.ids("web"), timeout=60)
        wait_for(
            lambda: http.client.HTTPConnection("127.0.0.1", ports["on"], timeout=2).request("GET", "/") is None,
            30,
            "the status listener",
        )
        for n in range(args.rounds):
            for mode in ("on", "off") if n % 2 == 0 else ("off", "on"):
                rate, counts = one_round(projects[mode], args.seconds, ports[mode] if mode == "on" else None)
                rates[mode].append(rate)
                for key in scrapes:
                    scrapes[key] += counts[key]
                print(f"round {n + 1} {mode:>3}: {rate:7.1f} requests/s", flush=True)
    finally:
        for p in projects.values():
            p.down()
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    result = {
        "rounds": args.rounds,
        "seconds_per_round": args.seconds,
        "median_on_rps": round(on, 1),
        "median_off_rps": round(off, 1),
        "ratio_on_off": round(on / off, 3),
        "scrapes_ok": scrapes["ok"],
        "scrapes_failed": scrapes["failed"],
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
