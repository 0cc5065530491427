#!/usr/bin/env python3
"""Image size: this image against Debian's nginx on the same base (bench/reference).

Builds the reference, reads both sizes with `docker image inspect`, prints them
and the ratio, and exits 1 when the ratio is above the bound (issue 11: 1.5).

    python3 bench/image_size.py [--image dynamic-nginx:test] [--bound 1.5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "dynamic-nginx-reference"


def size(image: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", image], check=True, capture_output=True, text=True
    ).stdout
    return int(out.strip())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", default="dynamic-nginx:test")
    parser.add_argument("--bound", type=float, default=1.5)
    args = parser.parse_args()
    subprocess.run(
        ["docker", "build", "-q", "--network", "host", "-t", REFERENCE, str(ROOT / "bench" / "reference")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ours, reference = size(args.image), size(REFERENCE)
    ratio = ours / reference
    print(
        f"{args.image}: {ours / 1e6:.1f} MB; Debian's nginx on the same base: {reference / 1e6:.1f} MB; "
        f"ratio {ratio:.3f} (bound {args.bound})"
    )
    return 0 if ratio <= args.bound else 1


if __name__ == "__main__":
    sys.exit(main())
