"""The watcher: Docker events in, rendered files in conf.d out.

Every relevant event (debounced) triggers a full rebuild: model, render,
write only what changed. Docker is asked only what the events may have
changed (nothing for a kill, one inspect for a start, a list otherwise),
so a rebuild stays fast when dockerd is busiest. A periodic resync covers the events the
daemon drops, and losing the daemon only means reconnect-and-resync; the
watcher never exits because Docker hiccupped. It knows nothing of nginx
processes: the reloader notices the files.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path

from . import events as E
from . import labels as L
from . import marker, reconnect, render, write
from .admission import Flapping, Leaving
from .batching import END, READY, RETRY_WRITE, WAKE, Batcher, Waits
from .docker_source import DockerSource, NotFound, is_listed
from .inbox import OVERFLOW, Inbox
from .model import Container, Model, Proxy, build, referenced_upstreams
from .readiness import Readiness
from .settings import Settings
from .template_watch import TemplateWatch

log = logging.getLogger("watcher")
MAX_CONFIG_BYTES = 1 << 20
STABLE_SESSION = 5.0  # a stream that lasted longer ended for a reason: reconnect at once
MAX_INSPECTS = 3  # more containers changed than this: one list is cheaper than an inspect each
WRITE_RETRY_SECONDS = 1.0


def config_texts(folders: Iterable[Path], pattern: str = "*.conf") -> list[str]:
    """The text of every user file matching `pattern` under the folders, for reference scanning.

    Files we generated are skipped: counting their `upstream` blocks as
    references would keep every upstream ever served, across restarts too.
    """
    texts = []
    for folder in folders:
        for path in sorted(folder.rglob(pattern)) if folder.is_dir() else ():
            try:
                if path.is_file() and path.stat().st_size <= MAX_CONFIG_BYTES and not marker.is_ours(path):
                    texts.append(path.read_text(errors="replace"))
            except OSError:
                continue
    return texts


def mark_stopping(containers: Iterable[Container], stopping: frozenset[str]) -> list[Container]:
    """Containers that got a terminating signal count as stopping, whatever Docker still says."""
    return mark(containers, stopping, "stopping")


def mark(containers: Iterable[Container], ids: Iterable[str], state: str) -> list[Container]:
    """The containers, with those of `ids` that Docker calls running given another state."""
    chosen = set(ids)
    return [dataclasses.replace(c, state=state) if c.id in chosen and c.state == "running" else c for c in containers]


# The proxy's project's services seen since the container started, one a line: a watcher
# restarted by supervisord (or the start-up render before it) hands them on.
SERVICES = "watcher/services"


def load_services(path: Path) -> set[str]:
    try:
        return {line for line in path.read_text().splitlines() if line and L.is_name(line)}
    except OSError:
        return set()


def save_services(path: Path, services: Collection[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        marker.replace(path, "".join(f"{s}\n" for s in sorted(services)).encode())
    except OSError as error:  # ownership then lasts while this process does
        log.debug("cannot keep the services in %s: %s", path, error)


class Watcher:
    """Keeps conf.d in step with the containers Docker runs."""

    def __init__(self, settings: Settings, connect: Callable[[], DockerSource] = DockerSource.from_env):
        self.settings = settings
        self._connect = connect
        self._stopping: frozenset[str] = frozenset()
        self._logged: set[tuple[str, str]] = set()
        self._batcher = Batcher(Waits.of(settings))
        self._readiness = Readiness(notify=self._port_opened)
        self._resynced = time.monotonic()
        self._queue: queue.Queue[object] | None = None
        self._listed: tuple[Proxy, list[Container]] | None = None  # the last answer from Docker
        # Services of the proxy's project seen (with any container, running or not) since the
        # container started: each keeps owning its upstream at 0 replicas, across watcher restarts.
        self._services: set[str] = load_services(settings.run_dir / SERVICES)
        self._leaving = Leaving()  # signalled to stop: back if Docker still runs them after their grace period
        self._flapping = Flapping()  # crash-looping: re-adds wait
        self._write_failed: frozenset[str] = frozenset()  # the write errors logged, while they last
        self._write_retry: threading.Timer | None = None
        self._conflicts: frozenset[str] = frozenset()  # user files in the way, logged once while they last

    def run(self) -> None:
        """Serve forever: connect, follow events, and after any failure start over.

        While Docker is away the files stay as they are (the last good
        upstreams keep serving); attempts back off with jitter up to
        reconnect.BACKOFF_CAP and never give up, and while Docker is
        unreachable a cheap probe cuts the wait short, so its return is noticed
        at once even after a long outage. Each outage is logged once.
        """
        write.remove_temp_files(self.settings.conf_dir)
        backoff = reconnect.Backoff()
        outage = reconnect.Outage(log, reconnect.endpoint())
        probe = reconnect.prober()

        def connected() -> None:
            outage.recovered()
            backoff.reset()

        while True:
            began = time.monotonic()
            kind = ""
            try:
                self._follow(self._connect(), connected)
                log.warning("the Docker event stream ended; reconnecting and resyncing")
                if time.monotonic() - began > STABLE_SESSION:
                    continue  # a daemon restart, most likely: try again at once
            except NotFound as error:
                kind = outage.failed(error, "not found")
            except Exception as error:  # whatever Docker did, never exit: retry
                kind = outage.failed(error)
            # Only an absent Docker is worth probing for: one that answers but
            # refuses, or errs, would pass the probe and be retried in a loop.
            reachable = kind in (reconnect.UNREACHABLE, reconnect.NOT_ANSWERING)
            reconnect.wait(backoff.next(), probe if reachable else None)

    def render_once(self, source: DockerSource) -> Model:
        """One full pass without events: what the entrypoint runs before nginx starts."""
        proxy = source.find_self(self.settings.container)
        return self.sync(source, proxy.id)

    @property
    def answered(self) -> bool:
        """True once Docker has answered a list: a failure after that is not Docker's."""
        return self._listed is not None

    def render_without_docker(self) -> Model:
        """What the start-up render writes when Docker cannot be asked: no
        containers, so every upstream the configuration mentions exists and
        answers 503, nginx -t passes, and whatever does not depend on Docker is
        served. Only for start-up: later, while Docker is away, the files of
        its last good answer stay as they are."""
        self._listed = (Proxy(id="", name="", project=self.settings.project, networks=()), [])
        return self.sync(DockerSource(None), "", set())  # an empty `changed`: Docker is not asked

    def _follow(self, source: DockerSource, connected: Callable[[], None] = lambda: None) -> None:
        proxy = source.find_self(self.settings.container)
        log.info("proxy container %s, compose project %r", proxy.name, proxy.project or self.settings.project)
        stream = source.subscribe()
        events: queue.Queue[object] = queue.Queue()  # unbounded for markers; Inbox bounds the events
        self._queue = events
        inbox = Inbox(events)

        def stalled(error: BaseException) -> None:
            log.warning(
                "no Docker event for %.0fs and Docker does not answer a ping (%s); reconnecting",
                watchdog.quiet,
                _one_line(error),
            )
            stream.close()

        watchdog = reconnect.Watchdog(source.ping, stalled)
        heard = _heard(stream, watchdog)
        pump = threading.Thread(target=_pump, args=(heard, events, self._relevant, inbox), name="events", daemon=True)
        pump.start()
        stop_watchdog = threading.Event()
        templates = TemplateWatch(self.settings.user_templates, events).start()  # edits render too
        try:
            self.sync(source, proxy.id)
            connected()
            watchdog.start(stop_watchdog)
            while True:
                resync = self.settings.resync_interval or None
                batch = self._batcher.collect(events, resync, self._next_deadline())
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("batch: %s", _describe(batch))
                ended = END in batch
                if OVERFLOW in batch:
                    inbox.taken()  # _changed lists for it
                for event in batch:
                    if isinstance(event, E.Event):
                        self._apply(source, event)
                changed = self._changed(batch, proxy.id)
                recheck = self._waits_over()
                if changed is not None and recheck:
                    changed |= set(recheck)
                    changed = changed if len(changed) <= MAX_INSPECTS else None
                since = time.monotonic() - self._resynced
                # A due resync waits for a batch that lists anyway (or twice the
                # interval): a start or a stop is not slowed by inspecting everything.
                due = changed is None or since > 2 * self.settings.resync_interval
                if not batch or (due and since > self.settings.resync_interval):
                    # Periodic resync: a list, which re-inspects what it shows changed
                    # (DockerSource.containers), not everything: kills must not wait behind it.
                    self._resynced = time.monotonic()
                    changed = None
                self.sync(source, proxy.id, changed)
                self._log_back(recheck)
                if ended:
                    return
        finally:
            stop_watchdog.set()
            stream.close()
            templates.stop()

    def _apply(self, source: DockerSource, event: E.Event) -> None:
        listed = self._find(event.container)
        stop_signal = listed.stop_signal if listed else source.stop_signal(event.container)
        self._admission(event, stop_signal, listed)
        self._stopping = E.update_stopping(self._stopping, event, stop_signal)
        # A kill changes nothing Docker reports until the die that follows; the
        # stopping set already has it. Keeping the cached inspect saves one API
        # call per replica when many are stopped at once (20 -> 1).
        if event.action != "kill":
            source.forget(event.container)
        if event.type == "container" and event.action == "destroy" and self._listed is not None:
            proxy, containers = self._listed  # gone for good: no need to ask Docker
            self._listed = (proxy, [c for c in containers if c.id != event.container])

    def _changed(self, batch: list[object], proxy_id: str) -> set[str] | None:
        """The containers to inspect again before rebuilding, or None to list everything.

        Nothing for a port that opened, a kill or the rest of a stopping
        container's exit (see changes_listing). The named container for other
        events about a listed or starting container: a start costs one inspect
        instead of a list, the proxy's inspect and the new one's. A list for
        anything about the proxy itself or about many containers at once.
        """
        if self._listed is None:
            return None
        known = {c.id for c in self._listed[1]}
        ids: set[str] = set()
        for item in batch:
            if item is READY or item is WAKE or item is RETRY_WRITE:
                continue
            if not isinstance(item, E.Event):
                return None
            if E.changes_listing(item, self._stopping):
                if not item.container or item.container == proxy_id:
                    return None
                # Only a start brings in a container the list did not have. The
                # network events of one being created come before its start, and
                # inspecting it then would wait for the start to finish.
                if item.action == "start" or item.container in known:
                    ids.add(item.container)
        return ids if len(ids) <= MAX_INSPECTS else None

    def _relevant(self, event: E.Event) -> bool:
        """False for events about containers this proxy can never serve (another
        project's, say): they would wake the watcher and count towards a burst.

        Called from the event thread; it only reads the last list. Everything
        is relevant until the first list; a network event of a container not
        listed is not (if it is ours, its start follows).
        """
        listed = self._listed
        if listed is None:
            return True
        proxy, containers = listed
        if event.container == proxy.id or any(c.id == event.container for c in containers):
            return True
        opted_in = self.settings.scope == "all"
        return event.type == "container" and is_listed(event.attributes, proxy.project, opted_in)

    def _port_opened(self) -> None:
        """Called from the readiness prober's thread."""
        if self._queue is not None:
            self._queue.put(READY)

    def sync(self, source: DockerSource, proxy_id: str, changed: Collection[str] | None = None) -> Model:
        """Rebuild everything from Docker's current state and write what changed.

        `changed` None asks Docker for everything; otherwise Docker's last
        answer is used, with only the `changed` containers inspected again.
        """
        settings = self.settings
        began = time.monotonic()
        listed = self._listed
        opted_in = settings.scope == "all"
        if changed is None or listed is None:
            proxy = source.proxy(proxy_id)
            if settings.project:
                proxy = dataclasses.replace(proxy, project=settings.project)
            listed = self._listed = (proxy, source.containers(proxy.project, opted_in=opted_in))
            self._own_services(source.services(proxy.project))
        elif changed:
            listed = self._listed = (listed[0], source.refresh(listed[1], changed, listed[0].project, opted_in))
        proxy, containers = listed
        # User files and user templates (their output is ours, their text is the user's) say what must exist.
        users = config_texts(settings.watch_dirs + (settings.conf_dir,))
        known = referenced_upstreams(users + config_texts((settings.user_templates,), "*.j2"))
        self._own_services({c.service for c in containers if proxy.project and c.project == proxy.project})
        containers = mark_stopping(containers, self._stopping)
        containers = mark(containers, self._flapping.held(c.id for c in containers), "starting")
        model = build(containers, proxy, known, settings.scope, settings.server_defaults, self._services)
        unready = self._readiness.unready(model) if settings.probe_ports else set()
        if unready:
            containers = mark(containers, unready, "starting")
            model = build(containers, proxy, known, settings.scope, settings.server_defaults, self._services)
        templates = render.find_templates([settings.user_templates, settings.builtin_templates])
        rendered = render.render_all(templates, model, settings)
        self._report(model.problems + tuple(rendered.errors.values()), model.warnings)
        changes = self._write(rendered.outputs, rendered.errors.keys())
        log.debug("sync (%s) took %.0f ms", _how(changed), (time.monotonic() - began) * 1000)
        if changes:
            log.info(
                "wrote %s%s: %s",
                ", ".join(changes.written) or "nothing",
                f", removed {', '.join(changes.removed)}" if changes.removed else "",
                " ".join(f"{u.name}={len(u.servers)}" for u in model.upstreams) or "no upstreams",
            )
        return model

    def _admission(self, event: E.Event, stop_signal: str, listed: Container | None) -> None:
        """Tell the admission policies what Docker did, and log a replica leaving or coming back.

        Called before update_stopping, so "was it stopping" is still known.
        """
        container_id = event.container
        name = event.attributes.get("name") or container_id[:12]
        if E.is_terminating(event, stop_signal):
            signal_name = _signal_name(E.kill_signal(event))
            departure = self._leaving.kill(container_id, name, signal_name, listed.stop_timeout if listed else None)
            if listed and listed.state == "running" and container_id not in self._stopping:
                log.info(
                    "%s received %s, the signal Docker stops it with: out of its upstreams"
                    " (back if Docker still runs it after its %g s stop grace period)",
                    name,
                    signal_name,
                    departure.grace,
                )
        elif event.type == "container" and event.action == "start":
            if self._leaving.discard(container_id) and container_id in self._stopping:
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

    def _waits_over(self) -> dict[str, str]:
        """Containers whose wait is over (a stop grace period, a flapping hold), to look at again.

        They are out of the stopping set from now: if Docker still runs them,
        the rebuild that follows serves them again. The value is the line to
        log if it does.
        """
        over = {}
        now = time.monotonic()
        for container_id, departure in self._leaving.due().items():
            self._stopping -= {container_id}
            over[container_id] = (
                f"{departure.name} still runs {now - departure.since:.1f} s after {departure.signal},"
                f" past its {departure.grace:g} s stop grace period: back in its upstreams"
            )
        for container_id in self._flapping.released():
            over.setdefault(container_id, "{name} ran through its flapping hold: stable again, back in its upstreams")
        return over

    def _log_back(self, recheck: dict[str, str]) -> None:
        for container_id, line in recheck.items():
            found = self._find(container_id)
            if found is not None and found.state == "running":
                log.info("%s", line.replace("{name}", found.name))

    def _find(self, container_id: str) -> Container | None:
        """The container as Docker last listed it, if it did."""
        listed = self._listed
        return next((c for c in listed[1] if c.id == container_id), None) if listed else None

    def _next_deadline(self) -> float | None:
        deadlines = [d for d in (self._leaving.next_deadline(), self._flapping.next_deadline()) if d is not None]
        return min(deadlines, default=None)

    def _own_services(self, services: set[str]) -> None:
        """Add to the services that own their upstreams, and keep them in the run dir (best effort)."""
        if services <= self._services:
            return
        self._services |= services
        save_services(self.settings.run_dir / SERVICES, self._services)

    def _write(self, outputs: Mapping[str, str], keep: Collection[str]) -> write.Changes:
        """write.sync, and for files it could not write (a full disk, a read-only
        mount) one error line each while the failure lasts, and another render
        from Docker's last answer every WRITE_RETRY_SECONDS until they are written.

        A failed write says nothing about Docker: the connection stays up, and
        nginx keeps the files it has.
        """
        record = self.settings.run_dir / write.RECORD
        changes = write.sync(self.settings.conf_dir, outputs, keep=keep, record=record)
        conflicts = frozenset(changes.conflicts)
        for line in sorted(conflicts - self._conflicts):
            log.warning("%s", line)
        self._conflicts = conflicts
        failed = frozenset(changes.failed)
        for line in sorted(failed - self._write_failed):
            log.error("%s; nginx keeps its current configuration; retrying", line)
        if self._write_failed and not failed:
            log.info("files in %s can be written again", self.settings.conf_dir)
        self._write_failed = failed
        events = self._queue
        retrying = self._write_retry is not None and self._write_retry.is_alive()
        if failed and events is not None and not retrying:
            self._write_retry = threading.Timer(WRITE_RETRY_SECONDS, events.put, (RETRY_WRITE,))
            self._write_retry.daemon = True
            self._write_retry.start()
        return changes

    def _report(self, problems: Iterable[str], warnings: Iterable[str] = ()) -> None:
        """Log each problem once while it lasts, so a resync does not repeat it."""
        current = {("error", line) for line in problems} | {("warning", line) for line in warnings}
        for level, line in sorted(current - self._logged):
            getattr(log, level)("%s", line)
        self._logged = current


def _signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number or 0).name
    except ValueError:
        return f"signal {number}"


def _how(changed: Collection[str] | None) -> str:
    if changed is None:
        return "listed"
    return f"inspected {len(changed)}" if changed else "from the last list"


def _describe(batch: list[object]) -> str:
    """`3 kill, 1 die, ready` for the debug log."""
    names = collections.Counter(
        f"{i.type}:{i.action}" if isinstance(i, E.Event) else "ready" if i is READY else "end" if i is END else "other"
        for i in batch
    )
    described = ", ".join(f"{n} {name}" for name, n in names.items()) or "none (resync)"
    stamped = [i.at for i in batch if isinstance(i, E.Event) and i.at]
    if stamped:
        described += f" (oldest {(time.time() - min(stamped)) * 1000:.0f} ms ago)"
    return described


def _heard(stream: Iterable[E.Event], watchdog: reconnect.Watchdog) -> Iterator[E.Event]:
    """The stream, telling the watchdog of every event."""
    for event in stream:
        watchdog.heard()
        yield event


def _pump(
    stream: Iterable[E.Event], events: queue.Queue[object], relevant: Callable[[E.Event], bool], inbox: Inbox
) -> None:
    try:
        for event in stream:
            if relevant(event):
                inbox.put(event)
    except Exception as error:  # any read error means the same as the end: resync
        log.warning("event stream failed: %s", _one_line(error))
    finally:
        events.put(END)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
