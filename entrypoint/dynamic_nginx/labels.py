"""Label decoding: the one place where untrusted label text becomes typed values.

Any container on the host can set labels, so nothing read here reaches nginx
unless it matched a strict pattern or range first. A bad value raises
LabelError naming the container, the label, the value and what is allowed.
"""

from __future__ import annotations

import re

LABEL_PREFIX = "dynamic-nginx."
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
COMPOSE_NUMBER = "com.docker.compose.container-number"

# What may name an upstream: DNS-label-like words joined by dots, as compose
# service names are. No spaces, quotes, braces or semicolons can get through.
NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9][A-Za-z0-9_-]{0,62}){0,7}")
UPSTREAM_SUFFIX = ".upstream"


class LabelError(ValueError):
    """A label value failed validation; str() is the one log line to print."""

    def __init__(self, container: str, label: str, value: str, allowed: str):
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(
            f"container {container}: label {label}={shown!r} is invalid; "
            f"allowed: {allowed}. Fix the label; this container is left out."
        )
        self.container = container
        self.label = label


def is_name(value: str) -> bool:
    """True if value can stand in nginx config as an upstream or zone name."""
    return NAME_RE.fullmatch(value) is not None and len(value) <= 200


def upstream_name(service: str) -> str:
    """The upstream a compose service is served as: `<service>.upstream`, lower-cased.

    Never the bare service name, so a user's `proxy_pass http://web:8000` keeps
    resolving through Docker DNS instead of colliding with our block; nginx
    matches upstream names case-insensitively, so we fold case ourselves.
    """
    return service.lower() + UPSTREAM_SUFFIX


def parse_port(container: str, label: str, value: str) -> int:
    """A TCP port 1-65535 written as plain decimal digits."""
    if re.fullmatch(r"[0-9]{1,5}", value) and 1 <= int(value) <= 65535:
        return int(value)
    raise LabelError(container, label, value, "a port number from 1 to 65535")
