"""Decision log lines: each container in or out, with the status's reason code, once per change.

So `docker logs proxy | grep web-2` tells the story the status and
`explain` tell: `container web-2: out (unhealthy): its health check says
unhealthy`, then `container web-2: in web.upstream: server 172.18.0.5:80;`.
A line is logged when a container's decision changes (and for each when
the watcher starts following Docker; the start-up render logs none, so the
start says it once), never at a resync that changes nothing. Containers
out of scope (`out_of_scope`: a `compose run` one, say) are logged at
debug only: on a shared host they could drown the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .model import Model

# What was decided about one container: ("in", server lines) or ("out", reason code).
Decision = tuple[str, str]
QUIET_REASONS = ("out_of_scope",)


def decisions(model: Model) -> dict[str, tuple[str, Decision, str]]:
    """Container id -> (name, decision, detail) for every container the model was given."""
    found: dict[str, tuple[str, Decision, str]] = {}
    lines: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for u in model.upstreams:
        for s in u.servers:
            params = f" {s.parameters}" if s.parameters else ""
            lines.setdefault(s.container.id, []).append(f"{u.name}: server {s.address}{params};")
            names[s.container.id] = s.container.name
    for container_id, served in lines.items():
        text = ", ".join(served)
        found[container_id] = (names[container_id], ("in", text), text)
    for e in model.excluded:
        found.setdefault(e.id, (e.container, ("out", e.reason), e.detail))
    return found


class DecisionLog:
    """Logs each container's decision when it changes (and once when a decided container is gone)."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self._last: Mapping[str, tuple[str, Decision, str]] = {}

    def update(self, model: Model) -> None:
        now = decisions(model)
        problems = set(model.problems)
        for container_id, (name, decision, detail) in sorted(now.items(), key=lambda item: item[1][0]):
            before = self._last.get(container_id)
            if before is not None and before[1] == decision:
                continue
            kind, what = decision
            level = logging.DEBUG if kind == "out" and what in QUIET_REASONS else logging.INFO
            if kind == "in":
                self.log.log(level, "container %s: in %s", name, what)
            elif detail in problems:  # the problem line, with its fix, is logged on its own
                self.log.log(level, "container %s: out (%s); the line above says why and the fix", name, what)
            else:
                self.log.log(level, "container %s: out (%s): %s", name, what, detail)
        for container_id in sorted(set(self._last) - set(now), key=lambda i: self._last[i][0]):
            name, (kind, what), _ = self._last[container_id]
            if not (kind == "out" and what in QUIET_REASONS):
                self.log.info("container %s: gone (Docker no longer lists it)", name)
        self._last = now
