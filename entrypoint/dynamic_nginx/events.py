"""Docker events as plain data, and what each one means for membership. No I/O.

The event that matters most is `kill`: Docker emits it right after delivering
the signal, before the process exits, so the signal `docker stop` sends is our
earliest notice that a replica is going away (it is "stopping" from then on).
Any other signal (a thread dump, a log reopen, a reload) leaves it running.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping
from typing import Any

CONTAINER_ACTIONS = frozenset(
    {"start", "restart", "die", "stop", "kill", "destroy", "pause", "unpause", "rename", "health_status"}
)
NETWORK_ACTIONS = frozenset({"connect", "disconnect"})
# Events about no one container (Swarm mode: swarm_source.py). Each one lists everything again.
SWARM_TYPES = frozenset({"service", "node", "tasks"})


@dataclasses.dataclass(frozen=True)
class Event:
    """A container or network event (`container` is the container's id for both
    kinds), or a Swarm one about no one container (`container` is empty)."""

    type: str
    action: str
    container: str
    attributes: Mapping[str, str]
    at: float = dataclasses.field(default=0.0, compare=False)  # Docker's timestamp, for the debug log


def from_api(raw: Mapping[str, Any]) -> Event | None:
    """Convert one decoded `/events` message; None for events we do not act on."""
    kind = raw.get("Type", "")
    action = str(raw.get("Action", ""))
    actor = raw.get("Actor") or {}
    attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
    # "health_status: healthy" carries its value in the action itself.
    base = action.split(":", 1)[0]
    try:
        at = int(raw.get("timeNano") or 0) / 1e9
    except (TypeError, ValueError):
        at = 0.0
    if kind == "container" and base in CONTAINER_ACTIONS:
        return Event("container", base, str(actor.get("ID", "")), attributes, at)
    if kind == "network" and base in NETWORK_ACTIONS:
        return Event("network", base, attributes.get("container", ""), attributes, at)
    if kind in SWARM_TYPES:  # a scale, an update, a drain: the whole stack is listed again
        return Event(kind, base, "", attributes, at)
    return None


def signal_number(text: str) -> int | None:
    """15, "15", "SIGTERM" and "TERM" all give 15; None if unknown."""
    text = text.strip().upper()
    if text.isascii() and text.isdigit():  # str.isdigit() alone accepts "²", which int() refuses
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    value = getattr(signal.Signals, name, None) if name.isidentifier() else None
    return int(value) if value is not None else None


def kill_signal(event: Event) -> int | None:
    """The signal number of a container's `kill` event; None for other events or an unreadable signal."""
    if event.type != "container" or event.action != "kill":
        return None
    return signal_number(event.attributes.get("signal", ""))


def is_terminating(event: Event, stop_signal: str = "") -> bool:
    """A `kill` with a signal Docker stops this container with: its StopSignal, or SIGKILL.

    `docker stop` sends the StopSignal (SIGTERM when unset or unreadable, as
    Docker does), then SIGKILL after the grace period; `docker kill` sends
    SIGKILL by default. Anything else (`docker kill -s QUIT` for a JVM thread
    dump, HUP to reload, USR1 to reopen logs, QUIT to a container whose
    StopSignal is not QUIT) is a message to a process that keeps running.
    """
    number = kill_signal(event)
    if number is None:
        return False
    return number in (signal.SIGKILL, signal_number(stop_signal) or signal.SIGTERM)


def update_stopping(stopping: frozenset[str], event: Event, stop_signal: str = "") -> frozenset[str]:
    """The ids known to be on their way out after this event.

    A terminating kill adds the container; it leaves again when it starts
    (restart policy, `docker start`) or is destroyed.
    """
    if is_terminating(event, stop_signal):
        return stopping | {event.container}
    if event.type == "container" and event.action in ("start", "destroy"):
        return stopping - {event.container}
    return stopping


def changes_listing(event: Event, stopping: frozenset[str]) -> bool:
    """False if, after this event, Docker's list of containers cannot give a different model.

    A kill changes nothing Docker reports until the die that follows. What
    happens next to a container already known to be stopping (its die, stop,
    network disconnect) cannot change the model either: it is out already.
    A destroy only removes a container, which the watcher does to its last
    list itself. Skipping the list for these matters when many replicas stop
    at once, the moment dockerd is busiest and a list is at its slowest.
    `stopping` is the set after the event was applied.
    """
    if event.type == "container" and event.action in ("kill", "destroy"):
        return False
    leaving = (event.type, event.action) in (("container", "die"), ("container", "stop"), ("network", "disconnect"))
    return not (leaving and event.container in stopping)


def is_addition(event: Event) -> bool:
    """Events that can only add a replica (start, unpause, network connect).

    The watcher may hold these back briefly during a burst of starts; every
    other event (kill, die, pause, health changes, ...) can take a replica
    out and is acted on at once.
    """
    if event.type == "container":
        return event.action in ("start", "unpause")
    return event.action == "connect"
