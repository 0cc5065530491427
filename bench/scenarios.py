"""The compose scenario shared by the three variants, and the trials run against it."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import time
from pathlib import Path
from typing import Any

from probes import BenchError, Events, Load, Project, poll

IMAGE = "dynamic-nginx:bench"
BACKEND = "dynamic-nginx-backend:bench"
PLAIN = "dynamic-nginx-bench-plain:bench"
RELOADED = "reloader: INFO: reloaded nginx"
WROTE = "watcher: INFO: wrote"
DEBUG_LINE = ": DEBUG: "
DISABLED = "upstream server temporarily disabled"
SLOW_REQUEST = 1.0  # the bound for "no request slower than"
STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z (.*)$")
LOAD_PATH = "/?sleep=0.02"  # each request holds the backend 20 ms: a steady ~150 req/s from 4 clients
LAME_PATH = "/lame/?sleep=0.02"
LOAD_BOUNDS = {"max_requests": 60_000, "max_seconds": 240}  # each load of a trial stops by then
RETRY = "proxy_next_upstream error timeout;\n        proxy_connect_timeout 1s;"
ROUTES = (("/", "web", 8000), ("/lame/", "lame", 8000), ("/fast/", "fast", 80))


def site(key: str) -> str:
    """The proxy's default.conf: the same three locations, each passed the variant's way."""
    blocks = []
    for path, service, port in ROUTES:
        passing = {
            "a": f"proxy_pass http://{service}.upstream;",
            "b": f"set ${service} http://{service}:{port};\n        proxy_pass ${service};",
            "c": f"proxy_pass http://{service}:{port};",
        }[key]
        blocks.append(f"    location {path} {{\n        {passing}\n        {RETRY}\n    }}\n")
    resolver = "    resolver 127.0.0.11 valid=1s ipv6=off;\n" if key == "b" else ""
    return "server {\n    listen 80;\n" + resolver + "".join(blocks) + "}\n"


# A backend that is never the bottleneck, so throughput shows the proxies' own cost.
FAST_SITE = 'server {\n    listen 80;\n    access_log off;\n    location / { return 200 "$hostname\\n"; }\n}\n'

# The demo backend, unchanged, but listening with a backlog of 1024 instead of
# socketserver's 5: with 5, wrk's 32 connections overflow the accept queue, the
# SYNs are dropped, nginx's connects time out and it marks the replicas failed,
# so the benchmark would measure the demo's backlog instead of the proxies.
BACKLOG = (
    "import runpy, socketserver; socketserver.TCPServer.request_queue_size = 1024; "
    'runpy.run_path("/app.py", run_name="__main__")'
)
WEB_COMMAND = ["python3", "-u", "-c", BACKLOG]

# A shell as PID 1 ignores SIGTERM, so the backend keeps serving until Docker
# kills it at the end of the grace period: a common accident in real images.
LAME_COMMAND = ["sh", "-c", f"python3 -u -c '{BACKLOG}' & wait"]

COMPOSE = """version: "3.8"
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    # Every request opens a new upstream connection; at wrk's rates the
    # TIME_WAIT sockets would use up the ephemeral ports of each proxy.
    sysctls:
      net.ipv4.tcp_tw_reuse: "1"
    # What the README recommends, given to all three alike: when twenty
    # replicas stop at once, the proxy's container is one cgroup among
    # twenty-odd busy ones and would wait hundreds of ms for a core.
    cpu_shares: 8192
{environment}    volumes:
{socket}      - ./default.conf:/etc/nginx/conf.d/default.conf:ro
  web:
    image: {backend}
    command: {web_command}
  lame:
    image: {backend}
    command: {lame_command}
    stop_grace_period: 2s
  fast:
    image: {plain}
    volumes:
      - ./fast.conf:/etc/nginx/conf.d/default.conf:ro
"""
SOCKET = "      - /var/run/docker.sock:/var/run/docker.sock:ro\n"
# (a) logs each batch of events and the time of each step, for the breakdown.
DEBUG = "    environment: [DYNAMIC_NGINX_LOG_LEVEL=debug]\n"


@dataclasses.dataclass(frozen=True)
class Variant:
    key: str
    label: str
    image: str


VARIANTS = (
    Variant("a", "dynamic-nginx", IMAGE),
    Variant("b", "nginx + resolver valid=1s", PLAIN),
    Variant("c", "nginx, static proxy_pass", PLAIN),
)


class VariantProject(Project):
    """One variant's compose project: the integration harness's Project (unique name, its own folder and
    127.0.0.1 port) with the scenario's files and the steps the trials take."""

    def __init__(self, variant: Variant, folder: Path):
        super().__init__(
            folder,
            COMPOSE,
            {"default.conf": site(variant.key), "fast.conf": FAST_SITE},
            values={
                "image": variant.image,
                "backend": BACKEND,
                "plain": PLAIN,
                "socket": SOCKET if variant.key == "a" else "",
                "environment": DEBUG if variant.key == "a" else "",
                "web_command": json.dumps(WEB_COMMAND),
                "lame_command": json.dumps(LAME_COMMAND),
            },
            prefix=f"dnbench{variant.key}",
        )
        self.variant = variant

    def start(self) -> None:
        """Backends first, then the proxy, so the static variant resolves both web replicas."""
        self.up("web", "lame", "fast", web=2, lame=1, fast=2)
        self.up("proxy")

    def scale(self, service: str, count: int) -> None:
        self.compose("up", "-d", "--no-recreate", f"--scale={service}={count}", service, timeout=900)

    def restart_proxy(self) -> None:
        self.compose("restart", "-t", "5", "proxy")

    def hosts(self, service: str) -> set[str]:
        """The hostnames the service's running replicas answer with."""
        return set(self.ids(service))

    def timeline(self, since: float) -> list[tuple[float, str]]:
        """(time, line) of the watcher's `wrote`, the reloader's `reloaded`, their
        debug lines and nginx's "temporarily disabled" lines since `since`."""
        found = []
        for line in self.logs(since=since, timestamps=True).splitlines():
            match = STAMPED.match(line)
            if match and any(marker in line for marker in (RELOADED, WROTE, DISABLED, DEBUG_LINE)):
                stamp = datetime.datetime.fromisoformat(match.group(1) + (match.group(2) or "")[:7] + "+00:00")
                found.append((stamp.timestamp(), match.group(3)))
        return sorted(found)


def web_trial(p: VariantProject, events: Events, timeout: float) -> dict[str, Any]:
    """Scale web 1 -> 2 under load: start -> first answer; then 2 -> 1: kill -> last answer."""
    before = set(p.ids("web", full=True))
    with Load(p.port, path=LOAD_PATH, **LOAD_BOUNDS) as load:
        time.sleep(0.3)
        p.scale("web", len(before) + 1)
        new = sorted(set(p.ids("web", full=True)) - before)
        if len(new) != 1:
            raise BenchError(f"{p.name}: expected one new web replica, got {new}")
        start = events.wait(p.name, "start", container=new[0]).at
        # None when the new replica got no answer in time: a result of the trial, not a failure.
        first = poll(lambda: load.first_from(new[0][:12]), start + timeout - time.time(), 0.01)
        time.sleep(0.5)
        mark = time.time()
        p.scale("web", len(before))
        kill = events.wait(p.name, "kill", service="web", after=mark - 0.05)
        events.wait(p.name, "die", container=kill.container)
        time.sleep(1.0)  # answers still on their way, and (b)'s cached DNS answer
    last = load.last_from(kill.container[:12])
    result = {
        "start_to_first_s": None if first is None else round(first - start, 3),
        "stopped_was_new": kill.container == new[0],
        "kill_to_last_s": None if last is None else round(last - kill.at, 3),
        "load": load.summary(),
    }
    if p.variant.key == "a":
        result.update(breakdown(p.timeline(start - 0.5), start, kill.at, first))
    return result


def breakdown(lines: list[tuple[float, str]], start: float, kill: float, first: float | None) -> dict[str, Any]:
    """Where (a)'s time goes: the watcher's write and the reloader's reload after start and after kill."""

    def after(at: float, text: str) -> float | None:
        return next((round(t - at, 3) for t, line in lines if t >= at and text in line), None)

    disabled = after(start, DISABLED)
    return {
        "start_to_wrote_s": after(start, WROTE),
        "start_to_reloaded_s": after(start, RELOADED),
        # nginx gave up on a server (max_fails): for a new replica, its port was not open yet.
        "start_to_server_disabled_s": disabled if disabled is not None and start + disabled < (first or kill) else None,
        "kill_to_wrote_s": after(kill, WROTE),
        "kill_to_reloaded_s": after(kill, RELOADED),
        "log_lines": [f"{t - start:+.3f}s {line[:240]}" for t, line in lines],
    }


def grace_trial(p: VariantProject, events: Events) -> dict[str, Any]:
    """Stop one of two `lame` replicas (serves through its 2 s grace) under load: kill -> last answer."""
    p.scale("lame", 2)
    p.restart_proxy()  # uniform for all variants; it lets (c) know both replicas
    p.wait_serving(p.hosts("lame"), timeout=30, path=LAME_PATH)
    with Load(p.port, path=LAME_PATH, **LOAD_BOUNDS) as load:
        time.sleep(0.5)
        mark = time.time()
        p.scale("lame", 1)
        kill = events.wait(p.name, "kill", service="lame", after=mark - 0.05)
        time.sleep(2.0)  # (b) may use its cached DNS answer for 1 s after the container is gone
    last = load.last_from(kill.container[:12])
    return {"kill_to_last_s": None if last is None else round(last - kill.at, 3), "load": load.summary()}


def scale_down_trial(p: VariantProject, events: Events) -> dict[str, Any]:
    """4 -> 1 under load from 4 keep-alive clients, from a freshly restarted proxy that knows all four."""
    p.scale("web", 4)
    p.restart_proxy()
    p.wait_serving(p.hosts("web"), timeout=30, path=LOAD_PATH)
    with Load(p.port, path=LOAD_PATH, **LOAD_BOUNDS) as load:
        time.sleep(1.0)
        mark = time.time()
        p.scale("web", 1)
        time.sleep(3.0)
    kills: dict[str, float] = {}
    for event in events.find(p.name, "kill", service="web", after=mark - 0.05):
        kills.setdefault(event.container, event.at)
    dies = {e.container: e.at for e in events.find(p.name, "die", service="web", after=mark - 0.05)}
    lasts = [load.last_from(container[:12]) for container in kills]
    result: dict[str, Any] = {
        "stopped": len(kills),
        "kill_to_last_s": [
            None if last is None else round(last - at, 3) for last, at in zip(lasts, kills.values(), strict=True)
        ],
        "load": load.summary(),
    }
    if kills:
        first = min(kills.values())
        result["from_first_kill"] = {
            "kills_s": sorted(round(at - first, 3) for at in kills.values()),
            "dies_s": sorted(round(at - first, 3) for at in dies.values()),
            "slow_requests_sent_s": [round(a.sent - first, 3) for a in load.slow(SLOW_REQUEST)],
            "log_lines": [f"{t - first:+.3f}s {line[:240]}" for t, line in p.timeline(first - 0.2)]
            if p.variant.key == "a"
            else [],
        }
    return result


def settle_reloads(p: VariantProject, since: float, quiet: float = 4.0, limit: float = 25.0) -> int:
    """Reload lines since `since`, once no new one came for `quiet` seconds (bounded by `limit`)."""
    deadline = time.time() + limit
    count, changed = p.reloads(since), time.time()
    while time.time() < deadline and time.time() - changed < quiet:
        time.sleep(0.5)
        now = p.reloads(since)
        if now != count:
            count, changed = now, time.time()
    return count


def burst_trial(p: VariantProject, events: Events, count_reloads: bool) -> dict[str, Any]:
    """Scale web 1 -> 20 in one command under load: reloads, time to serve all; then back to 1."""
    with Load(p.port, path=LOAD_PATH, max_requests=LOAD_BOUNDS["max_requests"], max_seconds=300) as load:
        time.sleep(0.5)
        mark = time.time()
        p.scale("web", 20)
        hosts = p.hosts("web")
        starts = [e.at for e in events.find(p.name, "start", service="web", after=mark - 0.05)]
        served = poll(lambda: hosts <= load.hosts_since(mark), 30, 0.05)
        reloads_up = settle_reloads(p, mark) if count_reloads else None
        timeline = p.timeline(mark) if count_reloads else []
        firsts = [t for t in (load.first_from(h) for h in hosts) if t is not None]
        mark_down = time.time()
        p.scale("web", 1)
        time.sleep(2.0)
        reloads_down = settle_reloads(p, mark_down) if count_reloads else None
        timeline_down = p.timeline(mark_down) if count_reloads else []
    kills = [e.at for e in events.find(p.name, "kill", service="web", after=mark_down - 0.05)]
    return {
        "replicas": len(hosts),
        "all_served": bool(served),
        "all_served_after_last_start_s": round(max(firsts) - max(starts), 3) if served and starts and firsts else None,
        "all_served_after_first_start_s": round(max(firsts) - min(starts), 3) if served and starts and firsts else None,
        "reloads_1_to_20": reloads_up,
        "reloads_20_to_1": reloads_down,
        "starts_spread_s": round(max(starts) - min(starts), 3) if starts else None,
        "timeline_from_first_start": [f"{t - min(starts):+.3f}s {line}" for t, line in timeline] if starts else [],
        "load_1_to_20": load.summary(until=mark_down),
        "load_20_to_1": load.summary(since=mark_down),
        "from_first_kill_20_to_1": {
            "kills_spread_s": round(max(kills) - min(kills), 3) if kills else None,
            "slow_requests_sent_s": [
                round(a.sent - min(kills), 3) for a in load.slow(SLOW_REQUEST) if a.sent >= mark_down
            ]
            if kills
            else [],
            "log_lines": [f"{t - min(kills):+.3f}s {line[:240]}" for t, line in timeline_down] if kills else [],
        },
    }
