#!/usr/bin/env python3
"""Long-lived connections through about 100 scale events in 10 minutes (issue 11, item 2).

A long request, an SSE stream and a WebSocket are held through the proxy to
the one replica of `web` that is never scaled away, while `web` and `other`
are scaled up and down in turn every few seconds and a light request load
runs. Every few seconds it samples the proxy container's memory (its cgroup's
working set: usage less inactive page cache, as `docker stats` counts it), its
nginx processes, and the old worker generations (workers titled "is shutting
down", grouped by start time as the reloader groups them) with their resident
memory. The same schedule runs, at the same time, against plain nginx with the
`resolver 127.0.0.11 valid=1s` workaround (no reloads), for comparison.

    python3 bench/long_connections.py                      # about 12 minutes
    python3 bench/long_connections.py --hold 60            # to try the script
    python3 bench/long_connections.py --variants dynamic   # dynamic-nginx only

It reuses the integration harness (compose projects, the request load) and the
clients of tests/integration/test_long_connections.py. Writes
bench/long_connections.json and .png and prints a Markdown table. Images: the
harness's (DYNAMIC_NGINX_IMAGE, DYNAMIC_NGINX_BACKEND_IMAGE) and the baseline
bench/plain built as --plain. Traffic only to 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# docker-compose v1 gives up on dockerd after 60 s; on a shared host busy with
# hundreds of containers of other projects a scale event can wait longer than that.
os.environ.setdefault("COMPOSE_HTTP_TIMEOUT", "300")
sys.path.insert(0, str(BENCH.parent / "tests" / "integration"))

from harness import BACKEND_IMAGE, IMAGE, PROXY, WEB, Load, Project, run  # noqa: E402
from longlived import GENERATION, SITE, start_all  # noqa: E402

PLAIN = "dynamic-nginx-bench-plain:longbench"
COMPOSE = PROXY + WEB + "  other:\n    image: {backend}\n"
# The test's site plus what the README recommends for the request load: a refused
# or unanswered connect is retried elsewhere within a second (given to both alike).
SITE = SITE.replace("proxy_buffering off;", "proxy_buffering off;\n        proxy_connect_timeout 1s;")
# The workaround: a variable proxy_pass, re-resolved through Docker's DNS every second.
RESOLVER_SITE = SITE.replace("listen 80;", "listen 80;\n    resolver 127.0.0.11 valid=1s ipv6=off;").replace(
    "proxy_pass http://web.upstream;", "set $backend http://web:8000;\n        proxy_pass $backend;"
)
SAMPLE_EVERY = 5.0
EVENT_EVERY = 6.0
QUIET_BEFORE_END = 15.0  # the last event is this long before the connections end, so they see all events
SETTLE = 20.0  # seconds sampled after the connections end: the final figures
# One exec per sample: cgroup usage and inactive file cache (v2, else v1), nginx
# processes, and for each draining worker its start time (clock ticks) and VmRSS.
SAMPLE_SCRIPT = r"""
if [ -f /sys/fs/cgroup/memory.current ]; then
  echo usage $(cat /sys/fs/cgroup/memory.current)
  echo inactive $(awk '$1=="inactive_file"{print $2}' /sys/fs/cgroup/memory.stat)
else
  echo usage $(cat /sys/fs/cgroup/memory/memory.usage_in_bytes)
  echo inactive $(awk '$1=="total_inactive_file"{print $2}' /sys/fs/cgroup/memory/memory.stat)
fi
for d in /proc/[0-9]*; do
  t=$(tr '\0' ' ' < $d/cmdline 2>/dev/null) || continue
  case "$t" in
    "nginx: worker process is shutting down"*)
      echo draining $(cut -d' ' -f22 $d/stat) $(awk '/^VmRSS:/{print $2}' $d/status); echo nginx;;
    nginx:*) echo nginx;;
  esac
done
"""


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def generations(starts: list[int]) -> int:
    """Draining workers' start times grouped as the reloader groups them (within one tick)."""
    ordered = sorted(starts)
    return sum(1 for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] > 1)


def sample(p: Project, since: float) -> dict[str, Any] | None:
    result = run(["docker", "exec", p.proxy_id(), "sh", "-c", SAMPLE_SCRIPT], timeout=30, check=False)
    if result.returncode != 0:
        return None
    values: dict[str, int] = {}
    starts: list[int] = []
    draining_kib = nginx = 0
    for line in result.stdout.splitlines():
        word, *rest = line.split()
        if word in ("usage", "inactive") and rest:
            values[word] = int(rest[0])
        elif word == "draining" and len(rest) == 2:
            starts.append(int(rest[0]))
            draining_kib += int(rest[1])
        elif word == "nginx":
            nginx += 1
    working_set = values.get("usage", 0) - values.get("inactive", 0)
    return {
        "t": round(time.monotonic() - since, 1),
        "memory_mib": round(working_set / 2**20, 1),
        "nginx_processes": nginx,
        "draining_workers": len(starts),
        "old_generations": generations(starts),
        "old_generations_rss_mib": round(draining_kib / 1024, 1),
    }


class Sampler:
    """Samples one proxy every SAMPLE_EVERY seconds in a thread until stopped (bounded by `limit`)."""

    def __init__(self, p: Project, since: float, limit: float):
        self.p, self.since, self.deadline = p, since, time.monotonic() + limit
        self.samples: list[dict[str, Any]] = []
        self.phase = "steady"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            if (s := sample(self.p, self.since)) is not None:
                s["phase"] = self.phase
                self.samples.append(s)
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def schedule(name: str, p: Project, hold: int, log: list[str]) -> dict[str, Any]:
    """The whole run against one proxy: steady samples, then the held connections through the events."""
    p.up(web=1, other=1)
    [held] = p.ids("web")
    p.wait_serving([held], timeout=60)
    since = time.monotonic()
    sampler = Sampler(p, since, limit=hold + 600).start()
    time.sleep(6 * SAMPLE_EVERY)  # a steady baseline before anything is held
    reloads_before = p.reloads()
    sampler.phase = "held"
    results, threads = start_all(p, hold)
    events: list[dict[str, Any]] = []
    with Load(p.port, clients=2, path="/?sleep=0.05", max_requests=100_000, max_seconds=hold + 120) as load:
        time.sleep(2)  # all three are through to `held` before membership changes
        started = time.monotonic()
        last_event = started + hold - QUIET_BEFORE_END - 2
        for event in range(int(hold / EVENT_EVERY) + 1):
            if time.monotonic() >= last_event:
                break
            # Alternate: web 1 -> 2 and back (its second replica goes, `held` stays), other likewise.
            service = "web" if event % 2 == 0 else "other"
            replicas = 2 if event % 4 < 2 else 1
            at = time.monotonic()
            p.up(**{service: replicas})
            events.append(
                {
                    "t": round(at - since, 1),
                    "service": service,
                    "replicas": replicas,
                    "compose_s": round(time.monotonic() - at, 1),
                }
            )
            if event % 10 == 9:
                say(f"{name}: {event + 1} scale events, {len(load.snapshot())} requests, {len(load.failures())} failed")
            time.sleep(max(0.0, started + (event + 1) * EVENT_EVERY - time.monotonic()))
        events_took = time.monotonic() - started
        for thread in threads:
            thread.join(hold + 90)
    sampler.phase = "after"
    time.sleep(SETTLE)
    sampler.stop()
    logs = p.logs()
    outcomes = load.snapshot()
    failures = load.failures()
    reports = [tuple(map(float, m)) for m in GENERATION.findall(logs)]
    ended = [line for line in logs.splitlines() if "ended the oldest worker generation" in line]
    log.extend(ended)
    return {
        "hold_s": hold,
        "scale_events": len(events),
        "events_took_s": round(events_took, 1),
        "events": events,
        "reloads": p.reloads() - reloads_before,
        "connections": summarise_connections(results, hold),
        "load": {
            "requests": len(outcomes),
            "failed": len(failures),
            "stale_keepalive_retries": load.stale_retries,
            "failures": [f"{f.status} {f.error}" for f in failures[:20]],
        },
        "reloader_reports": {"count": len(reports), "largest": max(reports, default=None)},
        "ended_by_bound": ended,
        "samples": sampler.samples,
    }


def summarise_connections(results: dict[str, dict[str, object]], hold: int) -> dict[str, Any]:
    expected = [f"tick {n}" for n in range(1, hold + 1)]
    out: dict[str, Any] = {}
    for name in ("long request", "sse", "websocket"):
        r = results.get(name, {"status": 0, "error": "no result (thread still running)"})
        entry: dict[str, Any] = {"status": r.get("status"), "seconds": round(float(r.get("seconds", 0)), 1)}  # type: ignore[arg-type]
        if name == "long request":
            entry["bytes"] = r.get("bytes", 0)
            entry["whole"] = r.get("status") == 200 and r.get("bytes") == hold * 1000
        else:
            ticks = r.get("ticks", [])
            entry["ticks"] = len(ticks)  # type: ignore[arg-type]
            entry["whole"] = ticks == expected and (name == "sse" or r.get("closed") is True)
        if "error" in r:
            entry["error"] = r["error"]
        out[name] = entry
    return out


def figures(run_: dict[str, Any]) -> dict[str, Any]:
    samples = run_["samples"]

    def of(phase: str, key: str) -> list[float]:
        return [s[key] for s in samples if s["phase"] == phase]

    held = of("held", "memory_mib")
    return {
        "memory_steady_mib": round(statistics.median(of("steady", "memory_mib")), 1)
        if of("steady", "memory_mib")
        else None,
        "memory_peak_mib": max(held) if held else None,
        "memory_final_mib": of("after", "memory_mib")[-1] if of("after", "memory_mib") else None,
        "old_generations_peak": max(of("held", "old_generations"), default=None),
        "old_generations_final": of("after", "old_generations")[-1] if of("after", "old_generations") else None,
        "old_generations_rss_peak_mib": max(of("held", "old_generations_rss_mib"), default=None),
        "nginx_processes_peak": max(of("held", "nginx_processes"), default=None),
    }


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, gens) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name, run_ in data["runs"].items():
        label = data["labels"][name]
        samples = run_["samples"]
        t = [s["t"] / 60 for s in samples]
        memory.plot(t, [s["memory_mib"] for s in samples], label=f"{label}: container working set")
        if name == "dynamic":
            memory.plot(
                t,
                [s["old_generations_rss_mib"] for s in samples],
                "--",
                label=f"{label}: old generations' workers (VmRSS)",
            )
            gens.step(t, [s["old_generations"] for s in samples], where="post", label=f"{label}: old generations")
            gens.step(
                t,
                [s["draining_workers"] for s in samples],
                where="post",
                linestyle=":",
                label=f"{label}: their workers",
            )
            for e in run_["events"]:
                gens.axvline(e["t"] / 60, color="0.9", linewidth=0.6, zorder=0)
    held = [s["t"] / 60 for s in next(iter(data["runs"].values()))["samples"] if s["phase"] == "held"]
    for axis in (memory, gens):
        if held:
            axis.axvspan(held[0], held[-1], color="tab:green", alpha=0.06, label="connections held")
        axis.legend(fontsize=8, loc="upper left")
        axis.grid(alpha=0.3)
    memory.set_ylabel("MiB")
    memory.set_ylim(bottom=0)
    gens.set_ylabel("count")
    gens.set_ylim(bottom=0)
    gens.set_xlabel("minutes (grey lines: scale events)")
    memory.set_title("Proxy memory and old worker generations while a request, an SSE stream and a WebSocket are held")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(data: dict[str, Any]) -> str:
    rows = [
        ("scale events (reloads)", lambda r, f: f"{r['scale_events']} ({r['reloads']})"),
        ("long request", lambda r, f: conn(r["connections"]["long request"], "bytes")),
        ("SSE stream", lambda r, f: conn(r["connections"]["sse"], "ticks")),
        ("WebSocket", lambda r, f: conn(r["connections"]["websocket"], "ticks")),
        ("load: requests failed", lambda r, f: f"{r['load']['failed']} of {r['load']['requests']}"),
        ("old generations: peak / final", lambda r, f: f"{f['old_generations_peak']} / {f['old_generations_final']}"),
        ("old generations' workers, peak (MiB)", lambda r, f: f"{f['old_generations_rss_peak_mib']}"),
        (
            "reloader's largest report (generations, workers, MiB)",
            lambda r, f: (
                "-"
                if not r["reloader_reports"]["largest"]
                else ", ".join(f"{v:g}" for v in r["reloader_reports"]["largest"])
            ),
        ),
        (
            "memory: steady / peak / final (MiB)",
            lambda r, f: f"{f['memory_steady_mib']} / {f['memory_peak_mib']} / {f['memory_final_mib']}",
        ),
        ("generations ended by the bound", lambda r, f: str(len(r["ended_by_bound"]))),
    ]
    names = list(data["runs"])
    lines = ["| | " + " | ".join(data["labels"][n] for n in names) + " |", "|---|" + "---|" * len(names)]
    for title, cell in rows:
        lines.append(f"| {title} | " + " | ".join(cell(data["runs"][n], data["figures"][n]) for n in names) + " |")
    return "\n".join(lines)


def conn(c: dict[str, Any], unit: str) -> str:
    return f"{c['status']}, {c[unit]} {unit}, {c['seconds']} s" + ("" if c["whole"] else f" — CUT {c.get('error', '')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hold", type=int, default=600, help="seconds each connection is held (at most 600)")
    parser.add_argument("--variants", default="dynamic,resolver")
    parser.add_argument("--out", default=str(BENCH / "long_connections"))
    args = parser.parse_args()
    hold = max(30, min(args.hold, 600))  # the demo backend holds a connection at most 600 s
    variants = [v for v in args.variants.split(",") if v]
    labels = {"dynamic": "dynamic-nginx", "resolver": "nginx + resolver valid=1s"}
    if "resolver" in variants:
        run(["docker", "build", "-q", "--network", "host", "-t", PLAIN, str(BENCH / "plain")], timeout=1800)
    projects: dict[str, Project] = {}
    runs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    ended: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dn-longbench-") as tmp:
        for name in variants:
            if name == "dynamic":
                projects[name] = Project(Path(tmp) / name, COMPOSE, {"conf.d/default.conf": SITE})
            else:
                compose = COMPOSE.replace("image: {image}", f"image: {PLAIN}").replace(
                    "      - /var/run/docker.sock:/var/run/docker.sock:ro\n", ""
                )
                projects[name] = Project(Path(tmp) / name, compose, {"conf.d/default.conf": RESOLVER_SITE})
            say(f"{name}: project {projects[name].name} on 127.0.0.1:{projects[name].port}")

        def one(name: str) -> None:
            try:
                runs[name] = schedule(name, projects[name], hold, ended)
            except Exception as error:  # reported in the output, never hidden
                errors[name] = repr(error)

        # Both at once: the same machine, the same minutes, the same noise.
        threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in variants]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(hold + 900)
        finally:
            say("tearing down")
            for p in projects.values():
                try:
                    p.down()
                except AssertionError as error:
                    say(f"teardown of {p.name}: {error}")
    if errors:
        say(f"failed: {errors}")
    if not runs:
        return 1
    data = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "images": {"dynamic": IMAGE, "resolver": PLAIN, "backend": BACKEND_IMAGE},
        "hold_s": hold,
        "event_every_s": EVENT_EVERY,
        "sample_every_s": SAMPLE_EVERY,
        "labels": {n: labels[n] for n in variants if n in runs},
        "figures": {n: figures(runs[n]) for n in variants if n in runs},
        "errors": errors,
        "runs": {n: runs[n] for n in variants if n in runs},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    chart(data, out.with_suffix(".png"))
    print(table(data))
    say(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
