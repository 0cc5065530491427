#!/usr/bin/env python3
"""The Swarm column (issue 13): dynamic-nginx against Debian's nginx on Swarm's DNS, in one run.

A two-node Swarm of nested engines (tests/integration/swarm.py) runs one stack
of three services: `app`, the demo backend, on both nodes, and two proxies on
the manager that pass to it over the stack's overlay network:

  dynamic-nginx      proxy_pass http://app.upstream;   (Swarm mode, found on its own)
  nginx + resolver   resolver 127.0.0.11 valid=1s ipv6=off;
                     set $u tasks.app; proxy_pass http://$u:8000;   (Debian's nginx)

Both carry the same retry settings (`proxy_next_upstream error timeout;
proxy_connect_timeout 1s;`) and take the same steady load at the same time,
so both see every change at the same moment. The schedule:

- scale `app` 2 -> 4 and back, `--rounds` times: for each new task, the
  seconds from Swarm marking it running to its first answer through each proxy;
  the errors of the scale-downs;
- `docker service update --image` rolling updates of the 3 tasks, stop-first
  and start-first, `--updates` times each: errors and requests over 1 s;
- the worker drained (its tasks move to the manager), then made active: errors.

    python3 bench/swarm.py               # about 4 minutes on 2 cores
    python3 bench/swarm.py --rounds 2 --updates 1

Images: the harness's (DYNAMIC_NGINX_IMAGE, DYNAMIC_NGINX_BACKEND_IMAGE) and
bench/plain (built when missing). Writes bench/swarm.json and prints a
Markdown table. Traffic only to 127.0.0.1; every loop is bounded in count and
time; the engines and their network are removed, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests" / "integration"))

from harness import BACKEND_IMAGE, IMAGE, SITE, Load, poll, run, tally, wait_for  # noqa: E402
from swarm import RESOLVER_SITE, Stack, Swarm, app_service, proxy_service  # noqa: E402

PLAIN = "dynamic-nginx-bench-plain:swarm"
VARIANTS = {"dynamic-nginx": 8080, "nginx + resolver": 8081}  # the port each publishes on the manager
LOW, HIGH, ROLLED = 2, 4, 3
NOT_SERVED_AFTER = 15.0  # a new task not answered through a proxy by then counts as "not served"


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def stats(values: list[float | None]) -> dict[str, Any]:
    measured = [v for v in values if v is not None]
    return {
        "samples": values,
        "served": len(measured),
        "tasks": len(values),
        "median_s": round(statistics.median(measured), 3) if measured else None,
        "max_s": round(max(measured), 3) if measured else None,
    }


def deploy(swarm: Swarm) -> Stack:
    stack = Stack(
        swarm,
        {
            "proxy": proxy_service(IMAGE, VARIANTS["dynamic-nginx"], "site.conf"),
            "plain": proxy_service(PLAIN, VARIANTS["nginx + resolver"], "resolver.conf"),
            "app": app_service(BACKEND_IMAGE, LOW),
        },
        {"site.conf": SITE.format(upstream="app.upstream"), "resolver.conf": RESOLVER_SITE},
    ).deploy()
    tasks = stack.wait_settled("app", LOW)
    for service in ("proxy", "plain"):
        stack.wait_settled(service, 1)
    wanted = {t.container for t in tasks}
    for name, port in VARIANTS.items():
        host_port = swarm.host_port[port]
        wait_for(lambda p=host_port: set(tally(p, 12)) == wanted, 60, f"{name} to serve {wanted}", 0.2)
    return stack


def scale_up(stack: Stack, loads: dict[str, Load]) -> dict[str, list[float | None]]:
    """LOW -> HIGH: seconds from each new task running to its first answer, per proxy."""
    before = {t.id for t in stack.running("app")}
    stack.scale("app", HIGH)
    new = [t for t in stack.wait_settled("app", HIGH) if t.id not in before]
    delays: dict[str, list[float | None]] = {}
    for name, load in loads.items():
        poll(lambda load=load: all(load.first_from(t.container) for t in new), NOT_SERVED_AFTER, 0.05)
        firsts = [load.first_from(t.container) for t in new]
        delays[name] = [round(f - t.since, 3) if f else None for f, t in zip(firsts, new, strict=True)]
    return delays


def windowed(loads: dict[str, Load], since: float, until: float) -> dict[str, dict[str, Any]]:
    return {name: load.summary(since, until) for name, load in loads.items()}


def add(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("requests", "non_2xx", "connection_errors", "over_1s")
    total: dict[str, Any] = {key: sum(s[key] for s in summaries) for key in keys}
    total["slowest_s"] = max((s["slowest_s"] for s in summaries), default=0.0)
    total["error_examples"] = sorted({e for s in summaries for e in s["error_examples"]})[:5]
    return total


def measure(stack: Stack, loads: dict[str, Load], rounds: int, updates: int) -> dict[str, Any]:
    delays: dict[str, list[float | None]] = {name: [] for name in loads}
    downs: dict[str, list[dict[str, Any]]] = {name: [] for name in loads}
    rolls: dict[str, dict[str, list[dict[str, Any]]]] = {
        order: {name: [] for name in loads} for order in ("stop-first", "start-first")
    }
    for number in range(rounds):
        for name, found in scale_up(stack, loads).items():
            delays[name] += found
        say(f"scale {LOW} -> {HIGH}, round {number + 1}: {delays}")
        since = time.time()
        stack.scale("app", LOW)
        stack.wait_settled("app", LOW)
        time.sleep(2)  # the stopped tasks' last requests end inside the window
        for name, summary in windowed(loads, since, time.time()).items():
            downs[name].append(summary)
    stack.scale("app", ROLLED)
    stack.wait_settled("app", ROLLED)
    time.sleep(2)
    for number in range(updates):
        for order, by_name in rolls.items():
            since = time.time()
            image = stack.roll("app", order)
            wait_for(lambda: stack.update_state("app") == "completed", 120, f"the {order} update", interval=0.5)
            stack.wait_settled("app", ROLLED, image)
            time.sleep(2)
            for name, summary in windowed(loads, since, time.time()).items():
                by_name[name].append(summary)
            failed = {n: s[-1]["non_2xx"] + s[-1]["connection_errors"] for n, s in by_name.items()}
            say(f"{order} update {number + 1}: failed {failed}")
    drained = drain(stack, loads)
    return {
        name: result(loads[name], delays[name], downs[name], {o: rolls[o][name] for o in rolls}, drained[name])
        for name in loads
    }


def drain(stack: Stack, loads: dict[str, Load]) -> dict[str, dict[str, Any]]:
    """Drain the worker (its tasks move to the manager), then make it active again: the drain's errors."""
    moved = sum(1 for t in stack.running("app") if t.node == "worker")
    since = time.time()
    stack.swarm.availability("worker", "drain")
    try:
        wait_for(
            lambda: (live := stack.settled("app", ROLLED)) and all(t.node == "manager" for t in live),
            120,
            "every task on the manager",
            interval=0.3,
        )
        time.sleep(2)
    finally:
        stack.swarm.availability("worker", "active")
    found = {name: {**summary, "tasks_moved": moved} for name, summary in windowed(loads, since, time.time()).items()}
    say(f"drain: failed { {n: s['non_2xx'] + s['connection_errors'] for n, s in found.items()} }")
    return found


def paired(ours: list[float | None], dns: list[float | None]) -> dict[str, Any]:
    """The same new tasks through both proxies: how often dynamic-nginx answered from one first,
    and the median of (its delay - the DNS set-up's)."""
    both = [(a, b) for a, b in zip(ours, dns, strict=True) if a is not None and b is not None]
    return {
        "tasks": len(ours),
        "dynamic_nginx_sooner": sum(1 for a, b in both if a < b),
        "median_difference_s": round(statistics.median(a - b for a, b in both), 3) if both else None,
    }


def result(
    load: Load,
    delays: list[float | None],
    downs: list[dict[str, Any]],
    rolls: dict[str, list[dict[str, Any]]],
    drained: dict[str, Any],
) -> dict[str, Any]:
    return {
        "drain": drained,
        "new_task_to_first_answer": stats(delays),
        "scale_downs": add(downs),
        **{f"rolling_update_{order}": add(summaries) for order, summaries in rolls.items()},
        "whole_run": load.summary(),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        "| proxy | new task → first answer, median / max | scale-downs: failed / requests "
        "| stop-first updates: failed / requests, over 1 s | start-first updates: failed / requests, over 1 s "
        "| worker drained: failed / requests |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["variants"].items():
        first = r["new_task_to_first_answer"]
        cells = [f"{first['median_s']} s / {first['max_s']} s ({first['served']} of {first['tasks']} served)"]
        for key in ("scale_downs", "rolling_update_stop-first", "rolling_update_start-first", "drain"):
            s = r[key]
            failed = s["non_2xx"] + s["connection_errors"]
            cells.append(f"{failed} / {s['requests']}" + (f", {s['over_1s']}" if key.startswith("rolling") else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    pair = results["paired"]
    lines.append(
        f"\nThe same {pair['tasks']} new tasks: dynamic-nginx answered first from {pair['dynamic_nginx_sooner']}; "
        f"median of (dynamic-nginx - nginx + resolver): {pair['median_difference_s']} s"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help=f"scale-ups {LOW} -> {HIGH} (default 10)")
    parser.add_argument("--updates", type=int, default=2, help="rolling updates of each order (default 2)")
    parser.add_argument("--out", type=Path, default=BENCH / "swarm.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    for tag, context in ((PLAIN, BENCH / "plain"), (BACKEND_IMAGE, BENCH.parent / "demo" / "backend")):
        if run(["docker", "image", "inspect", tag], check=False).returncode:
            run(["docker", "build", "-q", "--network", "host", "-t", tag, str(context)], timeout=1800)
    swarm = Swarm(ports=tuple(VARIANTS.values()))
    began = time.monotonic()
    nested = ""
    try:
        say("starting two engines, forming the Swarm, loading images")
        swarm.start({"manager": [IMAGE, PLAIN, BACKEND_IMAGE], "worker": [BACKEND_IMAGE]})
        nested = swarm.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        stack = deploy(swarm)
        say(f"Swarm and stack ready after {time.monotonic() - began:.0f} s")
        loads = {
            name: Load(swarm.host_port[port], clients=3, max_requests=400_000, max_seconds=1500)
            for name, port in VARIANTS.items()
        }
        for load in loads.values():
            load.__enter__()
        try:
            variants = measure(stack, loads, args.rounds, args.updates)
        finally:
            for load in loads.values():
                load.stop()
    finally:
        swarm.remove()
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "host_docker": host_docker(),
            "nested_docker": nested,
        },
        "images": {"dynamic-nginx": IMAGE, "nginx + resolver": PLAIN, "backend": BACKEND_IMAGE},
        "schedule": {"rounds": args.rounds, "updates": args.updates, "low": LOW, "high": HIGH, "rolled": ROLLED},
        "seconds": round(time.monotonic() - began),
        "variants": variants,
        "paired": paired(*(variants[name]["new_task_to_first_answer"]["samples"] for name in VARIANTS)),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    say(f"wrote {args.out}")
    print(table(results))
    return 0


def host_docker() -> str:
    return run(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
