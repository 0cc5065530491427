"""The watcher's view of Docker: its last answer, who is leaving, and what to ask it next.

Docker is asked only what the events may have changed: nothing for a kill
or a port that opened, one inspect per started or changed container, a list
otherwise (and on the periodic resync). The view reaches Docker only
through the narrow `Source` protocol, which DockerSource satisfies and a
fake can, so the policy is table-tested without Docker.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Collection, Iterable
from typing import Protocol

from . import events as E
from .admission import Flapping, Leaving
from .batching import READY, RETRY_WRITE, WAKE, Clock, Monotonic
from .docker_source import is_listed
from .model import Container, Proxy

log = logging.getLogger("watcher")
MAX_INSPECTS = 3  # more containers changed than this: one list is cheaper than an inspect each

# What to ask Docker: None to list everything, else the ids to inspect again (none: its last answer will do).
Ask = set[str] | None


class Source(Protocol):
    """The Docker questions the view asks (docker_source.DockerSource answers them)."""

    def proxy(self, proxy_id: str) -> Proxy: ...

    def containers(self, project: str, opted_in: bool = False) -> list[Container]: ...

    def services(self, project: str) -> set[str]: ...

    def refresh(
        self, listed: Iterable[Container], ids: Collection[str], project: str, opted_in: bool = False
    ) -> list[Container]: ...

    def stop_signal(self, container_id: str) -> str: ...

    def forget(self, container_id: str) -> None: ...


@dataclasses.dataclass(frozen=True)
class Answer:
    """Docker's answer: the proxy, the containers it serves from, and the services a list showed."""

    proxy: Proxy
    containers: list[Container]
    services: frozenset[str] = frozenset()


class DockerView:
    """Docker's last answer, the containers leaving (stop signal) or held (flapping), and the refresh rule.

    `project` (the setting) overrides the proxy's own compose project;
    `opted_in` is scope "all".
    """

    def __init__(self, project: str = "", opted_in: bool = False, clock: Clock | None = None):
        self.project = project
        self.opted_in = opted_in
        self.clock = clock or Monotonic()
        self.last: Answer | None = None
        self.stopping: frozenset[str] = frozenset()
        self._leaving = Leaving(self.clock.now)  # signalled to stop: back if Docker still runs them after their grace
        self._flapping = Flapping(self.clock.now)  # crash-looping: re-adds wait
        self._resynced = self.clock.now()

    @property
    def answered(self) -> bool:
        """True once Docker has answered a list."""
        return self.last is not None

    def assume(self, proxy: Proxy, containers: Iterable[Container] = ()) -> None:
        """Take this as Docker's last answer (the start-up render without Docker; tests)."""
        self.last = Answer(proxy, list(containers))

    def find(self, container_id: str) -> Container | None:
        """The container as Docker last listed it, if it did."""
        last = self.last
        return next((c for c in last.containers if c.id == container_id), None) if last else None

    def held(self) -> set[str]:
        """The listed containers whose flapping hold is not over: not served yet."""
        return self._flapping.held(c.id for c in self.last.containers) if self.last else set()

    def relevant(self, event: E.Event) -> bool:
        """False for events about containers this proxy can never serve (another
        project's, say): they would wake the watcher and count towards a burst.

        Called from the event thread; it only reads the last answer. Everything
        is relevant until the first list; a network event of a container not
        listed is not (if it is ours, its start follows).
        """
        last = self.last
        if last is None or event.type in E.SWARM_TYPES:
            return True
        if event.container == last.proxy.id or any(c.id == event.container for c in last.containers):
            return True
        return event.type == "container" and is_listed(event.attributes, last.proxy.project, self.opted_in)

    def apply(self, source: Source, event: E.Event) -> None:
        """Take in one event: the admission policies, the stopping set, the cache, a destroyed container."""
        listed = self.find(event.container)
        stop_signal = listed.stop_signal if listed else source.stop_signal(event.container)
        self._admission(event, stop_signal, listed)
        self.stopping = E.update_stopping(self.stopping, event, stop_signal)
        # A kill changes nothing Docker reports until the die that follows; the
        # stopping set already has it. Keeping the cached inspect saves one API
        # call per replica when many are stopped at once.
        if event.action != "kill":
            source.forget(event.container)
        if event.type == "container" and event.action == "destroy" and self.last is not None:
            last = self.last  # gone for good: no need to ask Docker
            self.last = dataclasses.replace(last, containers=[c for c in last.containers if c.id != event.container])

    def ask(self, batch: list[object], proxy_id: str, resync: float = 0.0) -> tuple[Ask, dict[str, str]]:
        """What to ask Docker before rebuilding after `batch` (see `changed`), with
        the containers whose wait is over (see `waits_over`) inspected too, and
        a list when a periodic resync (every `resync` seconds) is due.

        A due resync waits for a batch that lists anyway (or twice the
        interval): a start or a stop is not slowed by inspecting everything.
        An empty batch (the wait for events timed out) is the resync itself.
        """
        changed = self.changed(batch, proxy_id)
        recheck = self.waits_over()
        if changed is not None and recheck:
            changed = changed | set(recheck)
            changed = changed if len(changed) <= MAX_INSPECTS else None
        since = self.clock.now() - self._resynced
        due = changed is None or since > 2 * resync
        if not batch or (due and since > resync):
            # A list re-inspects only what it shows changed (DockerSource.containers).
            self._resynced = self.clock.now()
            changed = None
        return changed, recheck

    def changed(self, batch: list[object], proxy_id: str) -> Ask:
        """The containers to inspect again before rebuilding, or None to list everything.

        Nothing for a port that opened, a kill or the rest of a stopping
        container's exit (see events.changes_listing). The named container for
        other events about a listed or starting container: a start costs one
        inspect instead of a list, the proxy's inspect and the new one's. A
        list for anything about the proxy itself or about many containers.
        """
        if self.last is None:
            return None
        known = {c.id for c in self.last.containers}
        ids: set[str] = set()
        for item in batch:
            if item is READY or item is WAKE or item is RETRY_WRITE:
                continue
            if not isinstance(item, E.Event):
                return None
            if E.changes_listing(item, self.stopping):
                if not item.container or item.container == proxy_id:
                    return None
                # Only a start brings in a container the list did not have. The
                # network events of one being created come before its start, and
                # inspecting it then would wait for the start to finish.
                if item.action == "start" or item.container in known:
                    ids.add(item.container)
        return ids if len(ids) <= MAX_INSPECTS else None

    def refresh(self, source: Source, proxy_id: str, ask: Ask = None) -> Answer:
        """Ask Docker what `ask` says, and keep the answer as the last one."""
        last = self.last
        if ask is None or last is None:
            proxy = source.proxy(proxy_id)
            if self.project:
                proxy = dataclasses.replace(proxy, project=self.project)
            containers = source.containers(proxy.project, opted_in=self.opted_in)
            last = Answer(proxy, containers, frozenset(source.services(proxy.project)))
        elif ask:
            containers = source.refresh(last.containers, ask, last.proxy.project, self.opted_in)
            last = Answer(last.proxy, containers)
        self.last = last
        return last

    def waits_over(self) -> dict[str, str]:
        """Containers whose wait is over (a stop grace period, a flapping hold), to look at again.

        They are out of the stopping set from now: if Docker still runs them,
        the rebuild that follows serves them again. The value is the line to
        log if it does (see log_back).
        """
        over = {}
        now = self.clock.now()
        for container_id, departure in self._leaving.due().items():
            self.stopping -= {container_id}
            over[container_id] = (
                f"{departure.name} still runs {now - departure.since:.1f} s after {departure.signal},"
                f" past its {departure.grace:g} s stop grace period: back in its upstreams"
            )
        for container_id in self._flapping.released():
            over.setdefault(container_id, "{name} ran through its flapping hold: stable again, back in its upstreams")
        return over

    def log_back(self, recheck: dict[str, str]) -> None:
        """Log the line of each container of `recheck` that Docker still runs."""
        for container_id, line in recheck.items():
            found = self.find(container_id)
            if found is not None and found.state == "running":
                log.info("%s", line.replace("{name}", found.name))

    def next_deadline(self) -> float | None:
        """The clock time at which a wait of the admission policies is over, if any."""
        deadlines = [d for d in (self._leaving.next_deadline(), self._flapping.next_deadline()) if d is not None]
        return min(deadlines, default=None)

    def _admission(self, event: E.Event, stop_signal: str, listed: Container | None) -> None:
        """Tell the admission policies what Docker did, and log a replica leaving or coming back.

        Called before update_stopping, so "was it stopping" is still known.
        """
        container_id = event.container
        name = event.attributes.get("name") or container_id[:12]
        if E.is_terminating(event, stop_signal):
            signal_name = _signal_name(E.kill_signal(event))
            departure = self._leaving.kill(container_id, name, signal_name, listed.stop_timeout if listed else None)
            if listed and listed.state == "running" and container_id not in self.stopping:
                log.info(
                    "%s received %s, the signal Docker stops it with: out of its upstreams"
                    " (back if Docker still runs it after its %g s stop grace period)",
                    name,
                    signal_name,
                    departure.grace,
                )
        elif event.type == "container" and event.action == "start":
            if self._leaving.discard(container_id) and container_id in self.stopping:
                log.info("%s started again: back in its upstreams", name)
            hold = self._flapping.started(container_id)
            if hold is not None and hold.new:
                log.warning(
                    "%s is flapping (%d starts within %g s): it rejoins its upstreams only once it has run %g s",
                    name,
                    hold.starts,
                    hold.window,
                    hold.seconds,
                )
        elif event.type == "container" and event.action == "destroy":
            self._leaving.discard(container_id)
            self._flapping.forget(container_id)


def _signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number or 0).name
    except ValueError:
        return f"signal {number}"
