#!/usr/bin/env python3
"""The benchmark of issue 5: this image against plain nginx, side by side, in one run.

Three compose projects run the same scenario. Each has a `web` service (the
demo backend, which stops accepting connections the moment it gets SIGTERM)
and a `lame` service (the same backend behind a shell that ignores SIGTERM, as
many images do by accident: it keeps serving through its 2 s grace period
until Docker kills it). They differ only in the proxy:

  a  dynamic-nginx           proxy_pass http://web.upstream;
  b  plain nginx + resolver  resolver 127.0.0.11 valid=1s ipv6=off;
                             set $backend http://web:8000; proxy_pass $backend;
  c  plain nginx, static     proxy_pass http://web:8000;  (resolved once, at start)

All three carry the same retry settings (`proxy_next_upstream error timeout;
proxy_connect_timeout 1s;`), so only the way each learns about replicas differs.

    python3 bench/run.py            # about 15 minutes on 2 cores
    python3 bench/run.py --quick    # fewer trials, to try the script

Installs what it lacks (wrk from apt, matplotlib from pip or apt), builds the
images from this checkout, writes bench/results/results-<date>.json and .png,
copies them to bench/latest.json and bench/latest.png and prints a Markdown
table. Traffic goes only to 127.0.0.1; every request loop is bounded in count
and time; every project is torn down, even on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import importlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from probes import BenchError, Events, compose_command, run, say, wrk
from scenarios import (
    BACKEND,
    IMAGE,
    LAME_PATH,
    PLAIN,
    RELOADED,
    VARIANTS,
    VariantProject,
    burst_trial,
    grace_trial,
    scale_down_trial,
    web_trial,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BASE = "debian:trixie-slim"


def privileged(args: list[str]) -> list[str]:
    return args if os.geteuid() == 0 or not shutil.which("sudo") else ["sudo", *args]


def ensure_tools() -> None:
    """wrk from apt and matplotlib from pip (apt when pip refuses): the only things scripts/test does not bring."""
    if not shutil.which("wrk"):
        say("installing wrk (apt)")
        run(privileged(["apt-get", "update", "-qq"]), timeout=600)
        run(
            privileged(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", "wrk"]),
            timeout=600,
        )
    try:
        importlib.import_module("matplotlib")
        return
    except ImportError:
        pass
    say("installing matplotlib (pip)")
    if run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], timeout=900, check=False).returncode:
        say("pip refused; installing python3-matplotlib (apt)")
        run(privileged(["apt-get", "update", "-qq"]), timeout=600)
        run(
            privileged(
                [
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "-qq",
                    "python3-matplotlib",
                ]
            ),
            timeout=900,
        )
    importlib.invalidate_caches()
    try:
        importlib.import_module("matplotlib")
    except ImportError as error:
        raise BenchError(f"matplotlib is still missing for {sys.executable}: {error}") from error


def build_images() -> None:
    missing = run(["docker", "image", "inspect", BASE], check=False).returncode != 0
    if missing and run(["timeout", "60", "docker", "pull", "-q", BASE], timeout=90, check=False).returncode:
        say(f"{BASE} cannot be pulled; making it with scripts/make-base-image")
        run([str(ROOT / "scripts" / "make-base-image"), BASE], timeout=1800)
    for tag, context in ((IMAGE, ROOT), (BACKEND, ROOT / "demo" / "backend"), (PLAIN, BENCH / "plain")):
        say(f"building {tag}")
        run(["docker", "build", "-q", "--network", "host", "-t", tag, str(context)], timeout=1800)


NGINX_LOG = re.compile(r"\[(emerg|alert|crit|error|warn)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$")
OWN_LOG = re.compile(r"(watcher|reloader): (ERROR|WARNING|CRITICAL): (.*)$")


def log_findings(text: str) -> dict[str, Any]:
    """nginx error-log lines and watcher/reloader warnings, counted by message (addresses masked)."""
    found: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if match := NGINX_LOG.search(line):
            message = f"[{match.group(1)}] {match.group(2)}"
        elif match := OWN_LOG.search(line):
            message = f"{match.group(1)}: {match.group(2)}: {match.group(3)}"
        elif "Traceback" in line:
            message = "Traceback"
        else:
            continue
        found[re.sub(r"\d+\.\d+\.\d+\.\d+(:\d+)?|[0-9a-f]{12,64}", "<x>", message)[:200]] += 1
    return {"reloads": text.count(RELOADED), "messages": dict(found.most_common(15))}


def throughput(runs: list[dict[str, Any]], static: list[dict[str, Any]]) -> dict[str, Any]:
    """Median req/s, and the median of the per-round ratios to (c): rounds ran back to back, so a ratio
    within a round is less exposed to the machine's drifting load than a ratio of medians."""
    return {
        "rps": [w["rps"] for w in runs],
        "median_rps": round(statistics.median(w["rps"] for w in runs), 1),
        "ratio_to_static": round(statistics.median(w["rps"] / s["rps"] for w, s in zip(runs, static, strict=True)), 3),
        "round_ratios": [round(w["rps"] / s["rps"], 2) for w, s in zip(runs, static, strict=True)],
        "errors": sum(w["non_2xx"] + w["socket_errors"] for w in runs),
        **cpu_cost(runs, static),
    }


def cpu_cost(runs: list[dict[str, Any]], static: list[dict[str, Any]]) -> dict[str, Any]:
    """The proxy container's CPU time per request (all its processes), and (c)'s divided by it.

    Requests per second on a shared 2-core machine swing by a quarter from
    round to round; CPU time per request does not depend on what else got the
    cores, so it shows a few per cent. A ratio of 0.97 means this proxy needs
    1/0.97 of (c)'s CPU per request: where the proxy is the bottleneck, 97% of
    its throughput.
    """
    own = [w["cpu_us_per_request"] for w in runs if w.get("cpu_us_per_request")]
    floor = [s["cpu_us_per_request"] for s in static if s.get("cpu_us_per_request")]
    if not own or not floor:
        return {"cpu_us_per_request": None, "cpu_efficiency_to_static": None}
    return {
        "cpu_us_per_request": round(statistics.median(own), 1),
        "cpu_us_per_request_rounds": own,
        "cpu_efficiency_to_static": round(statistics.median(floor) / statistics.median(own), 3),
    }


def stats(values: list[float | None]) -> dict[str, Any]:
    measured = [v for v in values if v is not None]
    return {
        "samples": values,
        "measured": len(measured),
        "trials": len(values),
        "median_s": round(statistics.median(measured), 3) if measured else None,
        "max_s": round(max(measured), 3) if measured else None,
    }


def add_loads(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {
        "requests": 0,
        "non_2xx": 0,
        "connection_errors": 0,
        "stale_keepalive_retries": 0,
        "over_1s": 0,
        "slowest_s": 0.0,
        "error_examples": [],
    }
    for s in summaries:
        for key in ("requests", "non_2xx", "connection_errors", "stale_keepalive_retries", "over_1s"):
            total[key] += s[key]
        total["slowest_s"] = max(total["slowest_s"], s["slowest_s"])
        total["error_examples"] = sorted(set(total["error_examples"]) | set(s["error_examples"]))[:5]
    total["errors"] = total["non_2xx"] + total["connection_errors"]
    return total


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    compose = run(compose_command() + ["version", "--short"], check=False).stdout.strip()
    head = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).stdout.strip()
    dirty = bool(
        run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], check=False).stdout.strip()
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "docker": run(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout.strip(),
        "compose": " ".join(compose_command()) + " " + compose,
        "python": platform.python_version(),
        "commit": head + ("+dirty" if dirty else ""),
    }


@dataclasses.dataclass
class Plan:
    trials: int
    grace_trials: int
    scale_down_reps: int
    wrk_reps: int
    wrk_seconds: int
    timeout: float


def measure(plan: Plan, projects: dict[str, VariantProject], events: Events) -> dict[str, dict[str, Any]]:
    """Every phase, the variants interleaved within each phase so drifting noise hits all alike."""
    raw: dict[str, dict[str, Any]] = {key: collections.defaultdict(list) for key in projects}
    for p in projects.values():
        p.wait_serving(p.hosts("web"), timeout=30)
        p.wait_serving(p.hosts("lame"), timeout=30, path=LAME_PATH)
        p.wait_serving(p.hosts("fast"), timeout=30, path="/fast/")

    keys = list(projects)
    for kind, path in (("demo", "/"), ("fast", "/fast/")):
        say(f"throughput, {kind} backend: wrk -t2 -c32 -d{plan.wrk_seconds}s x {plan.wrk_reps} per variant")
        for p in projects.values():
            wrk(p.port, 2, path)  # warm-up
        for round_ in range(plan.wrk_reps):
            # Rotate the order each round, so no variant always follows the same one.
            for key in keys[round_ % len(keys) :] + keys[: round_ % len(keys)]:
                raw[key][f"wrk_{kind}"].append(
                    wrk(projects[key].port, plan.wrk_seconds, path, projects[key].cpu_seconds)
                )

    for p in projects.values():
        p.scale("web", 1)
        p.restart_proxy()
        p.wait_serving(p.hosts("web"), timeout=30)
    say(f"{plan.trials} trials per variant: web 1 -> 2 (start -> first answer), 2 -> 1 (kill -> last answer)")
    for trial in range(plan.trials):
        for key, p in projects.items():
            raw[key]["web_trials"].append(web_trial(p, events, plan.timeout))
        say(
            f"  trial {trial + 1}: "
            + ", ".join(f"{k} {raw[k]['web_trials'][-1]['start_to_first_s']}" for k in projects)
        )

    say(f"{plan.grace_trials} trials per variant: stop 1 of 2 replicas that serve through a 2 s grace period")
    for _ in range(plan.grace_trials):
        for key, p in projects.items():
            raw[key]["grace_trials"].append(grace_trial(p, events))
        say("  " + ", ".join(f"{k} {raw[k]['grace_trials'][-1]['kill_to_last_s']}" for k in projects))

    say(f"{plan.scale_down_reps} x scale-down 4 -> 1 under load per variant")
    for _ in range(plan.scale_down_reps):
        for key, p in projects.items():
            raw[key]["scale_down"].append(scale_down_trial(p, events))
        say(
            "  errors "
            + ", ".join(
                f"{k} {raw[k]['scale_down'][-1]['load']['non_2xx'] + raw[k]['scale_down'][-1]['load']['connection_errors']}"
                for k in projects
            )
        )

    for key in ("a", "b"):
        say(f"burst: scale web 1 -> 20 -> 1, {key}")
        raw[key]["burst"] = burst_trial(projects[key], events, count_reloads=key == "a")
    for key, p in projects.items():
        raw[key]["logs"] = log_findings(p.logs())
    return raw


def summarise(plan: Plan, raw: dict[str, dict[str, Any]]) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for v in VARIANTS:
        r = raw[v.key]
        web = r["web_trials"]
        sigterm = [t["kill_to_last_s"] for t in web if not t["stopped_was_new"] or t["start_to_first_s"] is not None]
        sigterm += [x for t in r["scale_down"] for x in t["kill_to_last_s"]]
        variants[v.key] = {
            "label": v.label,
            "start_to_first": {**stats([t["start_to_first_s"] for t in web]), "timeout_s": plan.timeout},
            "kill_to_last_sigterm": stats(sigterm),
            "kill_to_last_grace": stats([t["kill_to_last_s"] for t in r["grace_trials"]]),
            "scale_down": {**add_loads([t["load"] for t in r["scale_down"]]), "reps": len(r["scale_down"])},
            "web_trials_load": add_loads([t["load"] for t in web]),
            "grace_trials_load": add_loads([t["load"] for t in r["grace_trials"]]),
            "burst": r.get("burst"),
            "throughput": {kind: throughput(r[f"wrk_{kind}"], raw["c"][f"wrk_{kind}"]) for kind in ("demo", "fast")},
            "proxy_log": r["logs"],
            "raw": {k: r[k] for k in ("web_trials", "grace_trials", "scale_down")},
        }
    a = variants["a"]
    burst = a["burst"] or {}
    targets = {
        "start_to_first_median_le_0.3s": (a["start_to_first"]["median_s"] or 99) <= 0.3,
        "start_to_first_max_le_0.6s": (a["start_to_first"]["max_s"] or 99) <= 0.6
        and a["start_to_first"]["measured"] == a["start_to_first"]["trials"],
        "scale_down_zero_errors": a["scale_down"]["errors"] == 0,
        "scale_down_no_request_over_1s": a["scale_down"]["over_1s"] == 0,
        "burst_at_most_3_reloads": burst.get("reloads_1_to_20") is not None and burst["reloads_1_to_20"] <= 3,
        "throughput_fast_backend_ge_0.97_of_static": a["throughput"]["fast"]["ratio_to_static"] >= 0.97,
        "throughput_demo_backend_ge_0.97_of_static": a["throughput"]["demo"]["ratio_to_static"] >= 0.97,
        "cpu_per_request_fast_backend_within_1/0.97_of_static": (
            a["throughput"]["fast"]["cpu_efficiency_to_static"] or 0
        )
        >= 0.97,
    }
    return {"variants": variants, "targets_for_a": targets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="web 1 -> 2 -> 1 trials per variant")
    parser.add_argument("--grace-trials", type=int, default=5)
    parser.add_argument("--scale-down-reps", type=int, default=3)
    parser.add_argument("--wrk-reps", type=int, default=10, help="rounds of wrk per backend kind")
    parser.add_argument("--wrk-seconds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds a new replica has to get traffic")
    parser.add_argument("--deadline", type=float, default=2400, help="abort (and tear down) after this long")
    parser.add_argument("--quick", action="store_true", help="3 trials, 2 grace trials, 1 scale-down, wrk 2 x 4 s")
    args = parser.parse_args()
    plan = Plan(args.trials, args.grace_trials, args.scale_down_reps, args.wrk_reps, args.wrk_seconds, args.timeout)
    if args.quick:
        plan = Plan(3, 2, 1, 2, 4, args.timeout)

    def abort(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def overdue(signum: int, frame: object) -> None:
        raise BenchError(f"the benchmark ran past its --deadline of {args.deadline:.0f}s")

    signal.signal(signal.SIGTERM, abort)
    signal.signal(signal.SIGALRM, overdue)
    signal.alarm(int(args.deadline))
    began = time.time()
    ensure_tools()
    build_images()
    folder = Path(tempfile.mkdtemp(prefix="dnbench-"))
    events = Events()
    projects: dict[str, VariantProject] = {}
    try:
        for v in VARIANTS:
            projects[v.key] = VariantProject(v, folder / v.key)
            say(f"{v.key} = {v.label}: project {projects[v.key].name} on 127.0.0.1:{projects[v.key].port}")
            projects[v.key].start()
        raw = measure(plan, projects, events)
    finally:
        signal.alarm(0)
        say("tearing down")
        for p in projects.values():
            try:
                p.down()
            except (AssertionError, OSError, subprocess.SubprocessError) as error:
                say(f"could not tear down {p.name}: {error}")  # and go on with the others
        events.close()
        shutil.rmtree(folder, ignore_errors=True)
    stamp = datetime.datetime.now().astimezone()
    results = {
        "date": stamp.isoformat(timespec="seconds"),
        "command": "python3 bench/run.py" + (" --quick" if args.quick else ""),
        "machine": machine(),
        "plan": dataclasses.asdict(plan),
        "runtime_s": round(time.time() - began),
        **summarise(plan, raw),
    }
    import chart  # after ensure_tools: it needs matplotlib

    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    name = f"results-{stamp.strftime('%Y%m%d-%H%M%S')}"
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    chart.draw(results, out / f"{name}.png")
    shutil.copyfile(out / f"{name}.json", BENCH / "latest.json")
    shutil.copyfile(out / f"{name}.png", BENCH / "latest.png")
    say(f"wrote {out / name}.json and .png, copied to bench/latest.json and bench/latest.png")
    print(chart.table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
