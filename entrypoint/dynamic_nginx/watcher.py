"""The watcher: Docker events in, rendered files in conf.d out.

A thin loop: connect, subscribe, pump events into a queue, cut it into
batches (batching), take each batch into the view of Docker (view), ask
Docker only what the batch may have changed, rebuild (rebuild) and write
what changed. A periodic resync covers the events the daemon drops, and
losing the daemon only means reconnect-and-resync; the watcher never exits
because Docker hiccupped, only when told to stop. It knows nothing of
nginx processes: the reloader notices the files.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator

from . import events as E
from . import reconnect, rundir, status, write
from .batching import END, READY, RETRY_WRITE, WAKE, Batcher, Clock, Waits
from .decisions import DecisionLog
from .docker_source import DockerSource, NotFound
from .inbox import OVERFLOW, Inbox
from .model import Model, Proxy
from .readiness import Readiness
from .rebuild import SERVICES, Output, OwnedServices, rebuild
from .rundir import APPLIED
from .settings import Settings
from .swarm_source import SwarmSource, for_mode
from .template_watch import TemplateWatch
from .view import Ask, DockerView

log = logging.getLogger("watcher")
STABLE_SESSION = 5.0  # a stream that lasted longer ended for a reason: reconnect at once
SESSION_JOIN = 1.0  # how long a session's end waits for its event pump and watchdog threads


class Watcher:
    """Keeps conf.d in step with the containers Docker runs, until stop() is called."""

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], DockerSource] | None = None,
        clock: Clock | None = None,
    ):
        self.settings = settings
        self.stopped = threading.Event()
        self.view = DockerView(settings.project, settings.scope == "all", clock)
        self._connect = connect or (lambda: for_mode(DockerSource.from_env(), settings.mode, settings.container))
        self._batcher = Batcher(Waits.of(settings), clock)
        self._readiness = Readiness(notify=lambda: self._put(READY))
        self._services = OwnedServices(settings.run_dir / SERVICES)
        self._output = Output(settings, retry=lambda: self._put(RETRY_WRITE))
        self._queue: queue.Queue[object] | None = None
        # Logged by the long-running watcher only: the start-up render before it would say it all twice.
        self._decisions: DecisionLog | None = None
        # Written whether or not the listener is on: `dynamic-nginx status` reads it.
        self.status = status.WatcherStatus(settings.run_dir / rundir.WATCHER_STATUS, clock)

    def run(self) -> None:
        """Serve until stop(): connect, follow events, and after any failure start over.

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

        absent = False  # whether the last failure means Docker is gone (set per attempt below)

        def connected() -> None:
            outage.recovered()
            backoff.reset()

        def stopped_or_back() -> bool:
            """A backoff wait ends early on stop(), or once a gone Docker answers again."""
            return self.stopped.is_set() or (absent and probe())

        try:
            while not self.stopped.is_set():
                began = time.monotonic()
                kind = ""
                try:
                    self.follow(self._connect(), connected)
                    if self.stopped.is_set():
                        return
                    log.warning("the Docker event stream ended; reconnecting and resyncing")
                    if time.monotonic() - began > STABLE_SESSION:
                        continue  # a daemon restart, most likely: try again at once
                except NotFound as error:
                    kind = outage.failed(error, "not found")
                except Exception as error:  # whatever Docker did, never exit: retry
                    kind = outage.failed(error)
                # Only an absent Docker is worth probing for: one that answers but
                # refuses, or errs, would pass the probe and be retried in a loop.
                absent = kind in (reconnect.UNREACHABLE, reconnect.NOT_ANSWERING)
                self.status.disconnected(kind or "the event stream ended")
                reconnect.wait(backoff.next(), stopped_or_back, sleep=self._sleep)
        finally:
            self._output.cancel()
            self._readiness.stop()
            self.status.flush()

    def stop(self) -> None:
        """End run() (and follow()) soon, from any thread: a signal handler, a test."""
        self.stopped.set()
        self._put(END)

    def render_once(self, source: DockerSource) -> Model:
        """One full pass without events: what the entrypoint runs before nginx starts."""
        proxy = source.find_self(self.settings.container)
        return self.sync(source, proxy.id)

    @property
    def answered(self) -> bool:
        """True once Docker has answered a list: a failure after that is not Docker's."""
        return self.view.answered

    def render_without_docker(self) -> Model:
        """What the start-up render writes when Docker cannot be asked: no
        containers, so every upstream the configuration mentions exists and
        answers 503, nginx -t passes, and whatever does not depend on Docker is
        served. Only for start-up: later, while Docker is away, the files of
        its last good answer stay as they are."""
        self.view.assume(Proxy(id="", name="", project=self.settings.project, networks=()))
        return self.sync(DockerSource(None), "", set())  # an empty `ask`: Docker is not asked

    def follow(self, source: DockerSource, connected: Callable[[], None] = lambda: None) -> None:
        """One session: find the proxy, subscribe, sync, then rebuild after every
        batch of events until the stream ends or stop() is called."""
        proxy = source.find_self(self.settings.container)
        kind = "Swarm stack" if isinstance(source, SwarmSource) else "compose project"
        log.info("proxy container %s, %s %r", proxy.name, kind, proxy.project or self.settings.project)
        self._decisions = self._decisions or DecisionLog(log)
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
        pump = threading.Thread(
            target=_pump, args=(heard, events, self.view.relevant, inbox), name="events", daemon=True
        )
        pump.start()
        stop_watchdog = threading.Event()
        watching: threading.Thread | None = None
        templates = TemplateWatch(self.settings.user_templates, events).start()  # edits render too
        try:
            if self.stopped.is_set():
                return
            self.sync(source, proxy.id)
            connected()
            self.status.connected(source.api_version)
            watching = watchdog.start(stop_watchdog)
            while not self.stopped.is_set():
                self.status.write_due()
                resync = self.settings.resync_interval or None
                admission = self.view.next_deadline()
                batch = self._batcher.collect(events, resync, _earliest(admission, self.status.due()))
                if self.stopped.is_set():
                    return
                if batch == [WAKE] and not _passed(admission, self._batcher.clock.now()):
                    continue  # only the status file was due: written at the top of the loop
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("batch: %s", _describe(batch))
                self.status.events(batch)
                if OVERFLOW in batch:
                    inbox.taken()  # the view lists for it
                for event in batch:
                    if isinstance(event, E.Event):
                        self.view.apply(source, event)
                ask, recheck = self.view.ask(batch, proxy.id, self.settings.resync_interval)
                stamped = [e.at for e in batch if isinstance(e, E.Event) and e.at]
                self.sync(source, proxy.id, ask, min(stamped, default=None))
                self.view.log_back(recheck)
                if END in batch:
                    return
        finally:
            stop_watchdog.set()
            stream.close()
            templates.stop()
            # The session's threads end with it, so none outlives stop(); bounded,
            # so that a stream deaf to close() cannot hold up the reconnect.
            for thread in (watching, pump):
                if thread is not None:
                    thread.join(SESSION_JOIN)

    def sync(self, source: DockerSource, proxy_id: str, ask: Ask = None, event_at: float | None = None) -> Model:
        """Rebuild everything from Docker's current state and write what changed.

        `ask` None lists everything; otherwise Docker's last answer is used,
        with only the `ask` containers inspected again. `event_at` is the
        time of the oldest Docker event behind this sync: when files change,
        it is left for the reloader's event-to-applied histogram.
        """
        began = time.monotonic()
        answer = self.view.refresh(source, proxy_id, ask)
        proxy = answer.proxy
        self._services.add(answer.services)
        self._services.add(c.service for c in answer.containers if proxy.project and c.project == proxy.project)
        model, rendered = rebuild(
            self.settings,
            proxy,
            answer.containers,
            stopping=self.view.stopping,
            held=self.view.held(),
            services=self._services.names,
            readiness=self._readiness if self.settings.probe_ports else None,
        )
        self._output.report(model.problems + tuple(rendered.errors.values()), model.warnings)
        if self._decisions is not None:
            self._decisions.update(model)
        changes = self._output.write(rendered.outputs, rendered.errors.keys())
        self.status.synced(model)
        if changes and event_at is not None and self.status.on:
            status.write_applied(self.settings.run_dir / APPLIED, event_at, time.time())
        log.debug("sync (%s) took %.0f ms", _how(ask), (time.monotonic() - began) * 1000)
        if changes:
            log.info(
                "wrote %s%s: %s",
                ", ".join(changes.written) or "nothing",
                f", removed {', '.join(changes.removed)}" if changes.removed else "",
                " ".join(f"{u.name}={len(u.servers)}" for u in model.upstreams) or "no upstreams",
            )
        return model

    def _put(self, item: object) -> None:
        """Hand a marker to the current session (from any thread)."""
        if self._queue is not None:
            self._queue.put(item)

    def _sleep(self, seconds: float) -> None:
        self.stopped.wait(seconds)


def _earliest(*deadlines: float | None) -> float | None:
    return min((d for d in deadlines if d is not None), default=None)


def _passed(deadline: float | None, now: float) -> bool:
    return deadline is not None and deadline <= now


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
