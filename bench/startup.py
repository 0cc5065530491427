#!/usr/bin/env python3
"""Start-up latency: `docker start` returning -> the first HTTP answer, in one run.

Compares this image (with two backends already running, so its first answer
must come from a replica) against Debian's plain nginx started the same way.
Prints medians and the ratio; asserts nothing about speed.

    python3 bench/startup.py [--trials 10] [--image A --image B]

With several --image, their trials are interleaved (A, B, plain, A, B, plain,
...) so the machine's drifting load hits them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import get  # noqa: E402  (the integration tests' client)

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "dynamic-nginx:test"
BACKEND = "dynamic-nginx-backend:test"
PLAIN = "dynamic-nginx-bench-plain"
SITE = "server { listen 80; location / { proxy_pass http://web.upstream; } }\n"
PLAIN_SITE = "events {} http { server { listen 80; location / { return 200 'plain\\n'; } } }\n"


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def first_answer(port: int, limit: float = 10.0) -> tuple[float, int, str]:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        status, body = get(port, "/", timeout=2)
        if status:
            return time.monotonic() - started, status, body
        time.sleep(0.002)
    raise RuntimeError(f"no answer on port {port} within {limit}s")


def trial(create_args: list[str], port: int) -> tuple[float, int, str]:
    container = sh("docker", "create", "-p", f"127.0.0.1:{port}:80", *create_args)
    try:
        sh("docker", "start", container)
        return first_answer(port)
    finally:
        sh("docker", "rm", "-f", container)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--port", type=int, default=18181)
    parser.add_argument("--image", action="append", help=f"an image to measure (repeatable; default {IMAGE})")
    args = parser.parse_args()
    subprocess.run(
        ["docker", "build", "-q", "--network", "host", "-t", PLAIN, str(ROOT / "bench" / "plain")],
        check=True,
        capture_output=True,
    )
    project = "bench" + uuid.uuid4().hex[:8]
    network = sh("docker", "network", "create", project)
    conf = Path(f"/tmp/{project}")
    conf.mkdir()
    (conf / "site.conf").write_text(SITE)
    (conf / "nginx.conf").write_text(PLAIN_SITE)
    labels = ["--label", f"com.docker.compose.project={project}"]
    backends = [
        sh("docker", "run", "-d", "--network", project, *labels, "--label", "com.docker.compose.service=web", BACKEND)
        for _ in range(2)
    ]
    hostnames = {b[:12] for b in backends}

    def ours(image: str) -> list[str]:
        return [
            "--network",
            project,
            *labels,
            "--label",
            "com.docker.compose.service=proxy",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock:ro",
            "-v",
            f"{conf}/site.conf:/etc/nginx/conf.d/default.conf:ro",
            image,
        ]

    plain = ["--network", project, "-v", f"{conf}/nginx.conf:/etc/nginx/nginx.conf:ro", PLAIN]
    images = args.image or [IMAGE]
    results: dict[str, list[float]] = {image: [] for image in images} | {"plain nginx": []}
    try:
        for _ in range(args.trials):
            for image in images:
                seconds, status, body = trial(ours(image), args.port)
                if status != 200 or body not in hostnames:
                    raise RuntimeError(f"{image}: first answer was {status} {body!r}, not a replica")
                results[image].append(seconds)
            results["plain nginx"].append(trial(plain, args.port)[0])
    finally:
        subprocess.run(["docker", "rm", "-f", *backends], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
    summary = {
        name: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3), "trials": len(v)}
        for name, v in results.items()
    }
    for image in images:
        summary[f"{image} / plain, medians"] = round(summary[image]["median_s"] / summary["plain nginx"]["median_s"], 1)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
