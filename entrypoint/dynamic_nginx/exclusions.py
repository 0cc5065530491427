"""Why a container serves in no upstream: the reason codes, and the ledger one build keeps of them.

The model decides; this module names its decisions, so the status page, the
log lines and `explain` all speak the same machine-readable codes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model imports this module; only the type is needed here
    from .model import Container

# Why a container handed to `build` serves in no upstream (Exclusion.reason); docs/design.md lists them too.
# A reason ending in ":" is followed by the label or the owning service.
EXCLUSION_REASONS = (
    "out_of_scope",  # another project's, a `compose run` one, not opted in
    "not_running",  # Docker says paused, restarting, ...
    "stopping",  # it got the signal Docker stops it with
    "starting",  # held back after restarting repeatedly, or its port does not accept connections yet
    "health_starting",  # its HEALTHCHECK has not passed yet
    "unhealthy",
    "disabled_by_label",  # dynamic-nginx.enable=false
    "label_invalid:",  # label_invalid:<label>
    "no_shared_network",  # no network shared with the proxy, or dynamic-nginx.network names one it does not share
    "no_ipv4_address",  # on a shared network, but with no IPv4 address there
    "port_ambiguous",  # several exposed ports, none 80, no dynamic-nginx.port
    "upstream_owned_by:",  # upstream_owned_by:<service>: the upstream is another service's of the proxy's project
    "upstream_not_named",  # outside the proxy's project and not naming its upstream by label
    "backup_with_lb",  # a backup server where the upstream's balancing method cannot have one
    "too_many_upstreams",  # its upstreams were left out: more than MAX_UPSTREAMS wanted
)


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """A container `build` was given and serves in no upstream, and why.

    `reason` is machine-readable (one of EXCLUSION_REASONS, with the label or
    service after a colon where it ends in one); `detail` says it for people,
    and is the logged problem line where there is one.
    """

    container: str
    id: str
    service: str
    project: str
    reason: str
    detail: str


class Excluded(Exception):
    """A container cannot be served; str() is the log line saying why and the fix,
    `reason` the Exclusion reason."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def is_live(container: Container, health_gating: bool = True) -> bool:
    """Running, not on its way out, and healthy if it has a health check
    (unless its `dynamic-nginx.health_gating=false` opts out of that)."""
    healthy = container.health in (None, "healthy") or not health_gating
    return container.state == "running" and healthy


class Ledger:
    """What one build found so far: problem lines, and why each container is left out."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.excluded: dict[str, Exclusion] = {}

    def exclude(self, container: Container, reason: str, detail: str) -> None:
        self.excluded.setdefault(
            container.id, Exclusion(container.name, container.id, container.service, container.project, reason, detail)
        )


def absence(
    container: Container, leaving: Collection[str] = frozenset(), pending: Collection[str] = frozenset()
) -> tuple[str, str] | None:
    """(reason, detail) if the container is not to be served now whatever its labels say, else None.

    Running, not `leaving` (signalled to stop), not `pending` (held back), and
    healthy if it has a health check and does not opt out of health gating.
    """
    if container.state != "running":
        return "not_running", f"Docker says it is {container.state}"
    if container.id in leaving:
        return "stopping", "it received the signal Docker stops it with"
    if container.id in pending:
        return "starting", "held back until it stays up"
    if not is_live(container, container.decoded.health_gating):
        reason = "health_starting" if container.health == "starting" else "unhealthy"
        return reason, f"its health check says {container.health}"
    return None
