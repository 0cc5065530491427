"""The cost of one watcher sync at scale, without Docker: references -> build -> render,
and of the status file the watcher then writes (once idle: see status.WatcherStatus),
beside what writing it the old way cost (indented JSON of every member, each time).

Run inside the unit image (it has the package, Jinja2 and the built-in templates):

    docker run --rm -v $PWD/bench:/bench dynamic-nginx:unit-labels python3 /bench/sync_cost.py

Add `-v $PWD/entrypoint/dynamic_nginx:/usr/lib/python3/dist-packages/dynamic_nginx:ro`
to measure a work tree's package without rebuilding the image, and `--profile`
for a cProfile of one sync. Prints the median CPU time of several syncs per size:
this is a measurement, not a test, and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dynamic_nginx import status
from dynamic_nginx.model import Container, Model, Proxy
from dynamic_nginx.rebuild import rebuild
from dynamic_nginx.settings import Settings

T = TypeVar("T")
TEMPLATES = Path("/usr/share/dynamic-nginx/templates")
PROJECT = "shop"
NETWORK = "shop_default"


def containers(services: int, replicas: int) -> list[Container]:
    """`services` compose services of `replicas` running replicas each, some with labels."""
    made = []
    for s in range(services):
        for r in range(1, replicas + 1):
            n = s * replicas + r
            labels = {
                "com.docker.compose.project": PROJECT,
                "com.docker.compose.service": f"svc{s}",
                "com.docker.compose.container-number": str(r),
                "com.docker.compose.oneoff": "False",
            }
            if s % 3 == 0:
                labels |= {"dynamic-nginx.port": "8000", "dynamic-nginx.weight": "2", "dynamic-nginx.keepalive": "16"}
            made.append(
                Container(
                    id=f"{n:064x}",
                    name=f"{PROJECT}-svc{s}-{r}",
                    labels=labels,
                    networks={NETWORK: f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
                    exposed_ports=(80,),
                    created=f"2026-01-01T00:00:{n % 60:02d}",
                )
            )
    return made


def settings_in(tmp: Path) -> Settings:
    for name in ("conf.d", "templates"):
        (tmp / name).mkdir()
    return Settings(
        conf_dir=tmp / "conf.d",
        builtin_templates=TEMPLATES,
        user_templates=tmp / "templates",
        watch_dirs=(tmp / "conf.d",),
    )


def sync(settings: Settings, proxy: Proxy, listed: list[Container], stopping: frozenset[str]) -> Model:
    model, _ = rebuild(settings, proxy, listed, stopping=stopping, services={f"svc{i}" for i in range(3)})
    return model


def cpu_ms(work: Callable[..., T], *args: Any) -> tuple[float, T]:
    """The CPU time of this process in ms (the machine is shared: wall time counts the neighbours too), and the answer."""
    began = time.process_time()
    answer = work(*args)
    return (time.process_time() - began) * 1000, answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile one sync at the largest size")
    args = parser.parse_args()
    proxy = Proxy(id="f" * 64, name="shop-proxy-1", project=PROJECT, networks=(NETWORK,))
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_in(Path(tmp))
        results = {}
        for services, replicas in ((10, 1), (100, 10)):
            listed = containers(services, replicas)
            reporter = status.WatcherStatus(Path(tmp) / "status.json")
            times: dict[str, list[float]] = {"sync": [], "status": [], "status_before": []}
            for run in range(args.runs):
                # Each sync sees one change, as the watcher does: a different replica is stopping.
                stopping = frozenset({listed[run % len(listed)].id})
                took, model = cpu_ms(sync, settings, proxy, listed, stopping)
                times["sync"].append(took)
                reporter.synced(model)
                times["status"].append(cpu_ms(reporter.flush)[0])
                times["status_before"].append(cpu_ms(lambda m: status.encode(status.watcher_part(m, {})), model)[0])
            medians = {k: statistics.median(v) for k, v in times.items()}
            results[len(listed)] = medians["sync"]
            print(
                f"{len(listed):5d} containers in {services:3d} services: median CPU (ms) of {args.runs} runs: "
                f"sync {medians['sync']:.2f} (min {min(times['sync']):.2f}, max {max(times['sync']):.2f}); "
                f"status file {medians['status']:.2f} (written as before: {medians['status_before']:.2f})"
            )
        small, large = sorted(results)
        print(f"sync ratio {large} / {small}: {results[large] / results[small]:.1f}x")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for run in range(5):
                sync(settings, proxy, listed, frozenset({listed[run].id}))
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
