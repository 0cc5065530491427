#!/usr/bin/env python3
"""Cost at scale (issue 11, item 3): what one membership change costs as the deployment grows.

For each size (services x replicas, plus one `probe` service of one replica),
in a Docker engine nested in a container (never the host's own daemon: it hung
when hundreds of containers came and went at once), this measures:

- start -> first request: a new `probe` replica's Docker `start` event to the
  first request it answers through the proxy (every request goes to /probe/,
  whose upstream holds 2 servers then, so the new one answers within 2 tries);
  the rest of the deployment, at its full size, is what the proxy re-renders,
  tests and reloads each time;
- the proxy's own timings from its debug log: sync (inspect + render + write),
  `nginx -t`, reload;
- the proxy container's memory (cgroup): steady, and the peak during 20 changes
  in about a minute (10 replicas added and removed, one change every 3 s);
- CPU per change: the proxy cgroup's CPU time over those 20 changes, less its
  idle rate, divided by 20;
- where the time from start to first request goes, per addition, from the
  proxy's log lines after the start event: the watcher's first batch, its
  syncs, the sync whose files the reloader took, `nginx -t` done, the reload
  confirmed (new workers), and the first request (medians, in ms).

Backends are Debian's nginx (the bench's `plain` image) as one process
(`master_process off`) answering its hostname: a few MB each. They are created
and removed in serial batches of at most 50 (6 at a time). Writes
bench/scale.json and bench/scale.png; prints a Markdown table.

    python3 bench/scale.py                      # 10x1, 1x300, 100x10: about 30-40 minutes on 2 cores
    python3 bench/scale.py --sizes 10x1         # the baseline alone, to try the script
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from engines import Engine  # noqa: E402  (the nested engine of the fault tests)
from harness import free_port, get  # noqa: E402
from probes import BenchError, Events, run, say  # noqa: E402
from run import ensure_tools, machine  # noqa: E402

IMAGE = "dynamic-nginx:bench-scale"  # --image names another
PLAIN = "dynamic-nginx-bench-plain:latest"
PROJECT = "scale"
NET = "scale"
PROBE = "probe"
BATCH = 50  # containers per `docker` batch, created 6 at a time: the host's dockerd hung on hundreds at once
PARALLEL = 6
CHANGES = 20  # 10 additions and 10 removals of a probe replica
PACE = 3.0  # seconds per change: 20 changes in a minute
LABELS = f"--label com.docker.compose.project={PROJECT}"

BACKEND_CONF = """worker_processes 1;
master_process off;
error_log stderr error;
events { worker_connections 64; }
http {
    access_log off;
    server { listen 80; location / { return 200 "$hostname\\n"; } }
}
"""

SYNC = re.compile(r"sync \((.*?)\) took (\d+) ms")
TESTED = re.compile(r"nginx -t took (\d+) ms")
RELOADED = re.compile(r"reloaded nginx \(#\d+, (\d+) ms\)")
COUNTS = re.compile(r"(?:first render|wrote [^:]*): (.*)$")
# The steps of one addition, in the proxy's log (the timeline of start -> first request).
STEPS = (
    ("batch", re.compile(r"watcher: DEBUG: batch: ")),
    ("sync", SYNC),
    ("tested", TESTED),
    ("reloaded", RELOADED),
)


def service_names(services: int) -> list[str]:
    return [f"s{i:03d}" for i in range(services)]


def site(services: int) -> str:
    """The proxy's default.conf: one location per service, plus /probe/."""
    names = [*service_names(services), PROBE]
    blocks = "".join(f"    location /{n}/ {{ proxy_pass http://{n}.upstream; }}\n" for n in names)
    return "server {\n    listen 80;\n" + blocks + "}\n"


class Cgroup:
    """A container of the nested engine, read from the host's cgroup tree (v1, or v2)."""

    def __init__(self, engine: str, container: str):
        root = Path("/sys/fs/cgroup")
        self.v1 = (root / "memory").is_dir()
        if self.v1:
            self.memory = root / "memory" / engine / container
            self.cpu = root / "cpuacct" / engine / container
        else:
            self.memory = self.cpu = root / engine / container
        if not self.memory.is_dir():
            raise BenchError(f"no cgroup for the proxy at {self.memory}")

    def memory_bytes(self) -> int:
        name = "memory.usage_in_bytes" if self.v1 else "memory.current"
        return int((self.memory / name).read_text())

    def rss_bytes(self) -> int:
        """Anonymous memory of its processes (no page cache)."""
        fields = dict(line.split() for line in (self.memory / "memory.stat").read_text().splitlines())
        return int(fields["total_rss"] if self.v1 else fields["anon"])

    def kernel_peak(self, reset: bool = False) -> int | None:
        path = self.memory / ("memory.max_usage_in_bytes" if self.v1 else "memory.peak")
        try:
            if reset and self.v1:
                path.write_text("0")
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def cpu_seconds(self) -> float:
        if self.v1:
            return int((self.cpu / "cpuacct.usage").read_text()) / 1e9
        fields = dict(line.split() for line in (self.cpu / "cpu.stat").read_text().splitlines())
        return int(fields["usage_usec"]) / 1e6


class Sampler:
    """Memory of a cgroup every 50 ms in a thread, for the peak during the changes."""

    def __init__(self, cgroup: Cgroup):
        self.cgroup = cgroup
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.samples.append(self.cgroup.memory_bytes())
            except OSError:
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


class Nested:
    """The nested engine with the proxy and the backends in it."""

    def __init__(self, image: str = IMAGE) -> None:
        self.image = image
        self.port = free_port()
        self.engine = Engine(ports={self.port: 8080})
        self.events: Events | None = None
        self.proxy = ""

    def docker(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        result = run(["docker", "exec", self.engine.name, "docker", *args], timeout=timeout, check=check)
        return result.stdout.strip()

    def shell(self, script: str, timeout: float = 600) -> str:
        result = subprocess.run(
            ["docker", "exec", "-i", self.engine.name, "sh", "-s"],
            input=script,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode:
            raise BenchError(f"nested script exited {result.returncode}: {result.stderr[-1500:]}")
        return result.stdout

    def put(self, path: str, text: str) -> None:
        subprocess.run(
            ["docker", "exec", "-i", self.engine.name, "sh", "-c", f"mkdir -p /scale && cat > {path}"],
            input=text,
            text=True,
            check=True,
            timeout=60,
        )

    def start(self) -> None:
        say(f"starting the nested engine {self.engine.name} (proxy on 127.0.0.1:{self.port})")
        self.engine.start()
        say(f"loading {self.image} and {PLAIN} into it")
        self.engine.load(self.image, PLAIN)
        self.docker("network", "create", NET)
        self.put("/scale/backend.conf", BACKEND_CONF)
        self.events = Events(("docker", "exec", self.engine.name, "docker"))

    def create(self, services: list[str]) -> list[str]:
        """One backend per entry (its service name), in serial batches of BATCH, PARALLEL at a time."""
        ids: list[str] = []
        for first in range(0, len(services), BATCH):
            lines = []
            for i, service in enumerate(services[first : first + BATCH]):
                lines.append(
                    f"docker run -d -q --network {NET} {LABELS} --label com.docker.compose.service={service}"
                    f" --log-driver none -v /scale/backend.conf:/etc/nginx/nginx.conf:ro {PLAIN} &"
                )
                if i % PARALLEL == PARALLEL - 1:
                    lines.append("wait")
            lines.append("wait")
            ids += self.shell("\n".join(lines) + "\n").split()
        return ids

    def remove(self, ids: list[str]) -> None:
        for first in range(0, len(ids), BATCH):
            chunk = ids[first : first + BATCH]
            script = "\n".join(
                " ".join(["docker rm -f", *chunk[i : i + PARALLEL], ">/dev/null &"])
                for i in range(0, len(chunk), PARALLEL)
            )
            self.shell(script + "\nwait\n")

    def backends(self) -> list[str]:
        out = self.docker("ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={PROJECT}")
        return [c for c in out.split() if c != self.proxy]

    def start_proxy(self, services: int) -> None:
        self.put("/scale/default.conf", site(services))
        self.proxy = self.docker(
            "run",
            "-d",
            "--name",
            "proxy",
            "--network",
            NET,
            "-p",
            "8080:80",
            "--label",
            f"com.docker.compose.project={PROJECT}",
            "--label",
            "com.docker.compose.service=proxy",
            "-e",
            "DYNAMIC_NGINX_LOG_LEVEL=debug",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock:ro",
            "-v",
            "/scale/default.conf:/etc/nginx/conf.d/default.conf:ro",
            self.image,
        )

    def stop_proxy(self) -> None:
        if self.proxy:
            self.docker("rm", "-f", self.proxy, check=False)
            self.proxy = ""

    def logs(self, since: float = 0.0) -> str:
        """The proxy's log, stdout and stderr merged in time order (each line keeps its timestamp)."""
        args = ["logs", "-t", *(["--since", f"{since:.3f}"] if since else []), self.proxy]
        result = run(["docker", "exec", self.engine.name, "docker", *args], timeout=120, check=False)
        lines = (result.stdout + result.stderr).splitlines()
        return "\n".join(sorted(lines, key=stamp_key))

    def close(self) -> None:
        try:
            if self.engine.name and run(["docker", "inspect", self.engine.name], check=False).returncode == 0:
                self.stop_proxy()
                left = self.backends()
                if left:
                    say(f"removing {len(left)} backends in batches of {BATCH}")
                    self.remove(left)
        finally:
            if self.events:
                self.events.close()
            self.engine.remove()


def stamp_key(line: str) -> str:
    """A `docker logs -t` line's timestamp, made sortable (RFC 3339 with its nanoseconds padded)."""
    stamp = line.split(" ", 1)[0]
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    return seconds + "." + fraction.ljust(9, "0")


def rendered_counts(text: str) -> list[tuple[str, int]]:
    """(timestamp, servers) of each `first render:` / `wrote ...:` line of the proxy's log, in order."""
    found = []
    for line in text.splitlines():
        if match := COUNTS.search(line):
            found.append((line.split(" ", 1)[0], sum(int(n) for n in re.findall(r"=(\d+)", match.group(1)))))
    return found


def servers_in_config(text: str) -> int | None:
    """Servers in the proxy's last render."""
    counts = rendered_counts(text)
    return counts[-1][1] if counts else None


def epoch(stamp: str) -> float:
    """A `docker logs -t` timestamp (RFC 3339, UTC, nanoseconds) as seconds since the epoch."""
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    whole = datetime.datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    return whole.timestamp() + float("0." + (fraction or "0"))


def wait_config(n: Nested, expected: int, timeout: float) -> float:
    """Seconds from now (the proxy's start) to the log line of its first render holding `expected` servers.

    Waits until that render is also the last one for 5 s (steady state), but
    the time returned is the render's own timestamp, not when this poll saw it.
    """
    began = time.time()
    deadline = began + timeout
    while time.time() < deadline:
        text = n.logs()
        if servers_in_config(text) == expected:
            time.sleep(5)  # then check nothing more was written
            text = n.logs()
            if servers_in_config(text) == expected:
                first = next(stamp for stamp, count in rendered_counts(text) if count == expected)
                return epoch(first) - began
        time.sleep(1)
    raise BenchError(
        f"the proxy did not render {expected} servers within {timeout:.0f}s; last: {servers_in_config(n.logs())}"
    )


def first_from(port: int, host: str, deadline: float) -> float | None:
    """Poll /probe/ until `host` answers; the wall-clock time of that answer."""
    while time.time() < deadline:
        status, body = get(port, f"/{PROBE}/", timeout=2)
        if status == 200 and body == host:
            return time.time()
        time.sleep(0.005)
    return None


def timeline(text: str, start: float, first: float) -> dict[str, Any]:
    """Where one addition's time went: ms from its start event to each step in the
    proxy's log (the first batch, the last sync before the test, nginx -t done,
    the reload confirmed), the first request, and how many syncs ran meanwhile.

    The log's timestamps are dockerd's when it read each line: a few ms late at most.
    """
    found: dict[str, list[float]] = {name: [] for name, _ in STEPS}
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        try:
            at = epoch(stamp)
        except ValueError:
            continue
        if not start <= at <= first:
            continue
        for name, pattern in STEPS:
            if pattern.search(rest):
                found[name].append(round((at - start) * 1000, 1))
    tested = found["tested"][0] if found["tested"] else None
    syncs_before = [t for t in found["sync"] if tested is None or t <= tested]
    return {
        "batch": found["batch"][0] if found["batch"] else None,
        "synced": syncs_before[-1] if syncs_before else None,
        "tested": tested,
        "reloaded": found["reloaded"][0] if found["reloaded"] else None,
        "first_request": round((first - start) * 1000, 1),
        "syncs": len(syncs_before),
    }


TIMELINE = ("batch", "synced", "tested", "reloaded", "first_request", "syncs")


def timeline_medians(timelines: list[dict[str, Any]]) -> dict[str, float | None]:
    medians: dict[str, float | None] = {}
    for key in TIMELINE:
        values = [t[key] for t in timelines if t.get(key) is not None]
        medians[key] = round(statistics.median(values), 1) if values else None
    return medians


def step_times(text: str) -> dict[str, list[int]]:
    return {
        "sync_ms": [int(m.group(2)) for m in SYNC.finditer(text)],
        "nginx_t_ms": [int(m.group(1)) for m in TESTED.finditer(text)],
        "reload_ms": [int(m.group(1)) for m in RELOADED.finditer(text)],
    }


def describe(values: list[int] | list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def host_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_size(n: Nested, services: int, replicas: int) -> dict[str, Any]:
    """Bring one size up, measure, and take it down again (backends in batches)."""
    assert n.events is not None
    name = f"{services}x{replicas}"
    total = services * replicas
    say(f"{name}: creating {total} backends + 1 probe replica in batches of {BATCH}")
    available = host_available()
    began = time.time()
    wanted = [s for s in service_names(services) for _ in range(replicas)] + [PROBE]
    n.create(wanted)
    created_s = time.time() - began
    count = len(n.backends())
    if count != total + 1:
        raise BenchError(f"{name}: {count} backends run, not {total + 1}")
    time.sleep(3)
    per_container = (available - host_available()) / (total + 1)
    say(
        f"{name}: created in {created_s:.0f}s, host memory {per_container / 2**20:.1f} MiB per backend "
        "(container, shim and all); starting the proxy"
    )
    n.start_proxy(services)
    to_config = wait_config(n, total + 1, timeout=300 + total * 0.5)
    cgroup = Cgroup(n.engine.name, n.proxy)
    if get(n.port, f"/{PROBE}/")[0] != 200:
        raise BenchError(f"{name}: /{PROBE}/ does not answer 200 through the proxy")

    say(f"{name}: all {total + 1} servers rendered {to_config:.2f}s after the proxy's start; steady state")
    time.sleep(5)
    idle_cpu0, idle_t0 = cgroup.cpu_seconds(), time.monotonic()
    steady: list[int] = []
    steady_rss: list[int] = []
    for _ in range(20):
        steady.append(cgroup.memory_bytes())
        steady_rss.append(cgroup.rss_bytes())
        time.sleep(0.5)
    idle_rate = (cgroup.cpu_seconds() - idle_cpu0) / (time.monotonic() - idle_t0)

    say(f"{name}: {CHANGES} changes, one every {PACE:.0f}s (add a {PROBE} replica, then remove it)")
    window = time.time()
    cgroup.kernel_peak(reset=True)
    cpu0, t0 = cgroup.cpu_seconds(), time.monotonic()
    firsts: list[float | None] = []
    windows: list[tuple[float, float]] = []  # (start event, first request), epoch seconds
    with Sampler(cgroup) as sampler:
        for trial in range(CHANGES // 2):
            tick = time.monotonic()
            new = n.docker(
                "run",
                "-d",
                "--network",
                NET,
                *LABELS.split(),
                "--label",
                f"com.docker.compose.service={PROBE}",
                "--log-driver",
                "none",
                "-v",
                "/scale/backend.conf:/etc/nginx/nginx.conf:ro",
                PLAIN,
            )
            start = n.events.wait(PROJECT, "start", container=new, timeout=30).at
            first = first_from(n.port, new[:12], start + 20)
            firsts.append(None if first is None else round(first - start, 3))
            if first is not None:
                windows.append((start, first))
            say(f"  {name} trial {trial + 1}: start -> first request {firsts[-1]} s")
            time.sleep(max(0.0, PACE - (time.monotonic() - tick)))
            tick = time.monotonic()
            n.docker("rm", "-f", new)
            time.sleep(max(0.0, PACE - (time.monotonic() - tick)))
    elapsed = time.monotonic() - t0
    cpu = cgroup.cpu_seconds() - cpu0
    peak_kernel = cgroup.kernel_peak()
    steps = step_times(n.logs(window - 0.5))
    text = n.logs()
    timelines = [timeline(text, start, first) for start, first in windows]
    n.stop_proxy()

    say(f"{name}: removing {total + 1} backends in batches of {BATCH}")
    removal = time.time()
    n.remove(n.backends())
    removed_s = time.time() - removal
    measured = [f for f in firsts if f is not None]
    mib = 2**20
    return {
        "size": name,
        "services": services,
        "replicas_per_service": replicas,
        "containers": total + 1,
        "upstreams": services + 1,
        "create_backends_s": round(created_s, 1),
        "remove_backends_s": round(removed_s, 1),
        "host_memory_per_backend_mib": round(per_container / mib, 2),
        "proxy_start_to_all_rendered_s": round(to_config, 2),
        "start_to_first_request_s": {**describe(measured), "samples": firsts, "missed": len(firsts) - len(measured)},
        "start_to_first_request_steps_ms": {"median": timeline_medians(timelines), "samples": timelines},
        "sync_ms": describe(steps["sync_ms"]),
        "nginx_t_ms": describe(steps["nginx_t_ms"]),
        "reload_ms": describe(steps["reload_ms"]),
        "reloads_during_changes": len(steps["reload_ms"]),
        "memory_steady_mib": round(statistics.median(steady) / mib, 1),
        "memory_steady_rss_mib": round(statistics.median(steady_rss) / mib, 1),
        "memory_peak_mib": round(max(sampler.samples or [0]) / mib, 1),
        "memory_peak_kernel_mib": None if peak_kernel is None else round(peak_kernel / mib, 1),
        "changes": CHANGES,
        "changes_window_s": round(elapsed, 1),
        "cpu_idle_ms_per_s": round(idle_rate * 1000, 1),
        "cpu_ms_per_change": round(max(0.0, cpu - idle_rate * elapsed) / CHANGES * 1000, 1),
        "proxy_errors": sorted(
            {
                line[:200]
                for line in text.splitlines()
                if ": ERROR: " in line or ": CRITICAL: " in line or "[emerg]" in line
            }
        )[:10],
    }


FIGURES = (
    (
        "start_to_first_request_s",
        "start → first request, median (s)",
        lambda r: r["start_to_first_request_s"]["median"],
    ),
    ("sync_ms", "sync: inspect + render + write, median (ms)", lambda r: r["sync_ms"]["median"]),
    ("nginx_t_ms", "nginx -t, median (ms)", lambda r: r["nginx_t_ms"]["median"]),
    ("reload_ms", "reload, median (ms)", lambda r: r["reload_ms"]["median"]),
    ("memory_steady_mib", "proxy memory, steady, median (MiB)", lambda r: r["memory_steady_mib"]),
    ("memory_peak_mib", f"proxy memory, peak in {CHANGES} changes (MiB)", lambda r: r["memory_peak_mib"]),
    ("cpu_ms_per_change", "proxy CPU per change (ms)", lambda r: r["cpu_ms_per_change"]),
)


def compare(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure as a ratio to the first size, and its growth exponent against the container count
    (log ratio / log size ratio): 1 is linear, below 1 slower than linear."""
    base = sizes[0]
    out: dict[str, Any] = {}
    for size in sizes[1:]:
        growth = size["containers"] / base["containers"]
        figures = {}
        for key, _, get_value in FIGURES:
            a, b = get_value(base), get_value(size)
            ratio = round(b / a, 2) if a and b is not None else None
            exponent = round(math.log(ratio) / math.log(growth), 2) if ratio and ratio > 0 and growth > 1 else None
            figures[key] = {"ratio": ratio, "growth_exponent": exponent}
        out[size["size"]] = {"containers_ratio": round(growth, 1), "figures": figures}
    return out


def targets(sizes: list[dict[str, Any]], ratios: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for size in sizes[1:]:
        figures = ratios[size["size"]]["figures"]
        found[size["size"]] = {
            "start_to_first_within_2x_of_baseline": (figures["start_to_first_request_s"]["ratio"] or 99) <= 2,
            "no_step_faster_than_linear": all(
                (figures[k]["growth_exponent"] or 0) <= 1 for k in ("sync_ms", "nginx_t_ms", "reload_ms")
            ),
        }
    return found


def table(results: dict[str, Any]) -> str:
    sizes = results["sizes"]
    ratios = results["ratios"]
    head = "| | " + " | ".join(f"{s['size']} ({s['containers']} containers)" for s in sizes) + " |"
    rows = [head, "|---" * (len(sizes) + 1) + "|"]
    for key, label, get_value in FIGURES:
        cells = []
        for s in sizes:
            value = get_value(s)
            cell = "n/a" if value is None else f"{value:g}"
            if s is not sizes[0] and s["size"] in ratios:
                ratio = ratios[s["size"]]["figures"][key]["ratio"]
                cell += "" if ratio is None else f" (×{ratio:g})"
            cells.append(cell)
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    extra = (
        (
            "start → first request, max (s) / missed",
            lambda s: f"{s['start_to_first_request_s']['max']} / {s['start_to_first_request_s']['missed']}",
        ),
        (
            "sync / nginx -t / reload, max (ms)",
            lambda s: f"{s['sync_ms']['max']} / {s['nginx_t_ms']['max']} / {s['reload_ms']['max']}",
        ),
        (
            "after the start event, median (ms): first batch / sync done / nginx -t done / reload confirmed",
            lambda s: " / ".join(
                "n/a"
                if (steps := s.get("start_to_first_request_steps_ms", {}).get("median", {})).get(k) is None
                else f"{steps[k]:g}"
                for k in ("batch", "synced", "tested", "reloaded")
            ),
        ),
        (f"reloads in {CHANGES} changes", lambda s: str(s["reloads_during_changes"])),
        ("proxy RSS (anon), steady (MiB)", lambda s: f"{s['memory_steady_rss_mib']:g}"),
        ("proxy start → all servers rendered (s)", lambda s: f"{s['proxy_start_to_all_rendered_s']:g}"),
        # The host's MemAvailable before and after, divided: other jobs' memory swamps it at small sizes.
        (
            "host memory per backend (MiB)",
            lambda s: f"{s['host_memory_per_backend_mib']:g}" if s["containers"] >= 100 else "n/a (noise)",
        ),
        ("create / remove all backends (s)", lambda s: f"{s['create_backends_s']:g} / {s['remove_backends_s']:g}"),
    )
    for label, cell in extra:
        rows.append(f"| {label} | " + " | ".join(cell(s) for s in sizes) + " |")
    return "\n".join(rows)


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    columns = 4
    rows = -(-len(FIGURES) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows))
    axes = list(grid.flat)
    for spare in axes[len(FIGURES) :]:
        spare.axis("off")
    colors = ["#7f7f7f", "#ff7f0e", "#1f77b4", "#2ca02c"]
    for ax, (_key, label, get_value) in zip(axes, FIGURES, strict=False):  # spare axes stay blank
        values = [get_value(s) or 0 for s in sizes]
        bars = ax.bar(range(len(sizes)), values, color=colors[: len(sizes)])
        base = values[0]
        for bar, value in zip(bars, values, strict=True):
            text = f"{value:g}" + (f"\n×{value / base:.2g}" if base and bar is not bars[0] else "")
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(sizes)), [f"{s['size']}\n{s['containers']}" for s in sizes], fontsize=7)
        ax.set_title(label, fontsize=8, wrap=True)
        ax.margins(y=0.3)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(
        "dynamic-nginx at scale: services x replicas (containers), medians; ×ratio to the first size", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_size(text: str) -> tuple[int, int]:
    services, replicas = text.lower().split("x")
    return int(services), int(replicas)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10x1,1x300,100x10", help="services x replicas, comma-separated; the first is the baseline"
    )
    parser.add_argument("--out", default=str(BENCH / "scale.json"))
    parser.add_argument("--no-build", action="store_true", help="use the images as they are")
    parser.add_argument("--image", default=IMAGE, help="the proxy's image tag (built from this tree unless --no-build)")
    parser.add_argument("--redraw", action="store_true", help="only redraw the chart and table from --out")
    args = parser.parse_args()
    if args.redraw:
        results = json.loads(Path(args.out).read_text())
        draw(results, Path(args.out).with_suffix(".png"))
        print(table(results))
        return 0
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        ensure_tools()  # run.py's: matplotlib from pip, else apt (and wrk)
    if not args.no_build:
        for tag, context in ((args.image, ROOT), (PLAIN, BENCH / "plain")):
            say(f"building {tag}")
            run(["docker", "build", "-q", "--network", "host", "-t", tag, str(context)], timeout=1800)
    began = time.time()
    nested = Nested(args.image)
    measured: list[dict[str, Any]] = []
    try:
        nested.start()
        for services, replicas in sizes:
            measured.append(measure_size(nested, services, replicas))
            say(json.dumps({k: v for k, v in measured[-1].items() if k != "proxy_errors"}))
    finally:
        say("tearing down the nested engine")
        nested.close()
    ratios = compare(measured)
    results = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python3 bench/scale.py --sizes " + args.sizes,
        "machine": {**machine(), "nested_engine": "Debian docker.io in a container (tests/integration/dind)"},
        "runtime_s": round(time.time() - began),
        "sizes": measured,
        "ratios": ratios,
        "targets": targets(measured, ratios),
    }
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    draw(results, out.with_suffix(".png"))
    say(f"wrote {out} and {out.with_suffix('.png')}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
