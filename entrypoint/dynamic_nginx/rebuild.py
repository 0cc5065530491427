"""One rebuild: Docker's answer and the user's files in, the model and rendered text out; then the write.

`rebuild` reads the user's files but writes nothing; `Output` writes, logs
each problem once while it lasts and retries failed writes; `OwnedServices`
remembers the project's services across watcher restarts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from . import labels as L
from . import marker, render, rundir, write
from .model import Container, Model, Proxy, Unready, build, referenced_upstreams
from .readiness import Readiness
from .settings import Settings

log = logging.getLogger("watcher")
MAX_CONFIG_BYTES = 1 << 20
WRITE_RETRY_SECONDS = 1.0
# The proxy's project's services seen since the container started, one a line: a watcher
# restarted by supervisord (or the start-up render before it) hands them on.
SERVICES = rundir.SERVICES


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


def rebuild(
    settings: Settings,
    proxy: Proxy,
    containers: Iterable[Container],
    *,
    stopping: Collection[str] = (),
    held: Collection[str] = (),
    services: Collection[str] = (),
    readiness: Readiness | None = None,
    unready: Unready | None = None,
) -> tuple[Model, render.Rendered]:
    """The model and its rendered files: `stopping` containers are out, `held` ones
    (flapping) and those whose port `readiness` finds closed not in yet; one build.
    `unready` stands in for `readiness` where nothing is to be remembered (explain)."""
    # User files and user templates (their output is ours, their text is the user's) say what must exist.
    users = config_texts(settings.watch_dirs + (settings.conf_dir,))
    known = referenced_upstreams(users + config_texts((settings.user_templates,), "*.j2"))
    model = build(
        containers,
        proxy,
        known,
        settings.scope,
        settings.server_defaults,
        services,
        leaving=stopping,
        pending=held,
        unready=readiness.unready_servers if readiness is not None else unready,
    )
    templates = render.find_templates([settings.user_templates, settings.builtin_templates])
    return model, render.render_all(templates, model, settings)


class Output:
    """Writes rendered files into conf.d and reports, each line once while it lasts.

    A failed write (a full disk, a read-only mount) is logged once and
    `retry` is called WRITE_RETRY_SECONDS later, from a timer thread, until
    the files are written; it says nothing about Docker, and nginx keeps the
    files it has.
    """

    def __init__(self, settings: Settings, retry: Callable[[], None] | None = None):
        self.settings = settings
        self.retry = retry
        self._logged: set[tuple[str, str]] = set()
        self._write_failed: frozenset[str] = frozenset()  # the write errors logged, while they last
        self._conflicts: frozenset[str] = frozenset()  # user files in the way, logged once while they last
        self._timer: threading.Timer | None = None

    def report(self, problems: Iterable[str], warnings: Iterable[str] = ()) -> None:
        """Log each problem once while it lasts, so a resync does not repeat it."""
        current = {("error", line) for line in problems} | {("warning", line) for line in warnings}
        for level, line in sorted(current - self._logged):
            getattr(log, level)("%s", line)
        self._logged = current

    def write(self, outputs: Mapping[str, str], keep: Collection[str] = ()) -> write.Changes:
        """write.sync into conf.d, with the logging and retries described above."""
        record = self.settings.run_dir / rundir.WRITTEN
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
        retrying = self._timer is not None and self._timer.is_alive()
        if failed and self.retry is not None and not retrying:
            self._timer = threading.Timer(WRITE_RETRY_SECONDS, self.retry)
            self._timer.daemon = True
            self._timer.start()
        return changes

    def cancel(self) -> None:
        """No more retries (the watcher stops)."""
        if self._timer is not None:
            self._timer.cancel()


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


class OwnedServices:
    """Services of the proxy's project seen (with any container, running or not) since the
    container started: each keeps owning its upstream at 0 replicas, across watcher restarts."""

    def __init__(self, path: Path):
        self.path = path
        self.names: set[str] = load_services(path)

    def add(self, services: Iterable[str]) -> None:
        """Add to the services, and keep them in the run dir (best effort)."""
        services = set(services)
        if services <= self.names:
            return
        self.names |= services
        save_services(self.path, self.names)
