"""The reloader: config files change -> debounce -> `nginx -t` -> reload.

It watches folders, not files (editors replace files atomically), and knows
nothing of Docker: it reloads for any change, whoever made it. A failed
`nginx -t` is reported and never reloads, so nginx keeps serving its last
good configuration until the files are valid again.

Events can be missed: inotify may be out of watches or instances (the host's
fs.inotify limits are shared by every container of a user), and its queue
may overflow, which watchdog drops silently. So the reloader falls back to
polling when inotify cannot be had (filewatch), and, whenever nothing is pending, it
reconciles every RECONCILE_SECONDS: it compares a fingerprint of the watched
files (name, size, mtime, inode: one stat each, no reads) with the one taken
before the last `nginx -t`, and treats a difference as a change.
"""

from __future__ import annotations

import collections
import logging
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import filewatch, health, lastgood, rundir, status
from .nginx import Nginx
from .settings import Settings

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

log = logging.getLogger("reloader")
RECONCILE_SECONDS = 2.0  # how often, while idle, the watched files are compared with what was last tested


def is_ignored(path: str) -> bool:
    """Temp and editor scratch files: hidden names or folders, backups, vim's probe file."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    hidden = any(part.startswith(".") and part not in (".", "..") for part in parts)
    return hidden or name.endswith(("~", ".swp", ".swx", ".tmp")) or name == "4913"


def _ignored(skip: Iterable[Path]) -> Callable[[str], bool]:
    folders = tuple(skip)
    return lambda path: is_ignored(path) or _under(Path(path), folders)


def counts(event: FileSystemEvent, skip: Iterable[Path] = ()) -> bool:
    """True for a change to a file that nginx may read; opens and reads never count.

    Folders in `skip` hold templates, not configuration: the watcher renders
    them, and the rendered file's change is what reloads (reloading for the
    template too would cost a second reload).
    """
    return filewatch.counts(event, _ignored(skip))


def is_rename_into_place(event: FileSystemEvent, skip: Iterable[Path] = ()) -> bool:
    """True for a file renamed to a name nginx may read (see filewatch)."""
    return filewatch.is_rename_into_place(event, _ignored(skip))


def _under(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def newest_mtime(folders: Iterable[Path]) -> float:
    newest = 0.0
    for folder in folders:
        for path in folder.rglob("*") if folder.is_dir() else ():
            try:
                if not is_ignored(str(path)):
                    newest = max(newest, path.stat().st_mtime)
            except OSError:
                continue
    return newest


Fingerprint = frozenset[tuple[str, int, int, int]]


def fingerprint(folders: Iterable[Path], skip: Iterable[Path] = ()) -> Fingerprint:
    """(path, size, mtime, inode) of every file nginx may read under the folders: one stat
    per file, so cheap enough to take every few seconds. A file replaced by a rename
    has a new inode even when its size and mtime look the same."""
    skip = tuple(skip)
    found = set()
    for folder in folders:
        for path in folder.rglob("*") if folder.is_dir() else ():
            if is_ignored(str(path)) or _under(path, skip):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                found.add((str(path), st.st_size, st.st_mtime_ns, st.st_ino))
    return frozenset(found)


BURST_AFTER = 2  # this many actions within the burst window make a burst
RENAMED_QUIET = 0.005  # quiet needed when every notice was a rename into place


def remaining(
    now: float,
    first: float,
    last: float,
    recent: Sequence[float],
    calm: tuple[float, float],
    burst: tuple[float, float],
    burst_window: float,
    renamed_only: bool = False,
) -> float:
    """Seconds still to wait before acting on notices (<= 0: act now).

    Normally wait until quiet for calm[0] seconds, but no longer than calm[1]
    after the first notice. When the last BURST_AFTER actions (`recent`)
    all happened less than `burst_window` before this first notice, changes
    are arriving in a burst (a large scale-up): use the longer `burst` pair,
    so twenty replicas starting over several seconds cost three reloads, not
    twenty. A single change, or two in a row (a rollout step), stays fast.

    When every notice was a rename into place (`renamed_only`), the files are
    already complete: a few milliseconds of quiet, enough to catch the other
    files one rebuild renames, replace calm[0]. Waiting longer would only
    delay a new replica's first request.
    """
    in_burst = sum(1 for t in recent if first - t < burst_window) >= BURST_AFTER
    quiet, longest = burst if in_burst else calm
    if renamed_only and not in_burst:
        quiet = min(quiet, RENAMED_QUIET)
    return min(last + quiet - now, first + longest - now)


class Debounce:
    """Collects change notices; `settle()` returns once they have settled (see `remaining`)."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        burst_minimum: float | None = None,
        burst_maximum: float | None = None,
        burst_window: float = 0.0,
    ):
        self.calm = (minimum, maximum)
        self.burst = (
            minimum if burst_minimum is None else burst_minimum,
            maximum if burst_maximum is None else burst_maximum,
        )
        self.burst_window = burst_window
        self._lock = threading.Lock()
        self._pending = threading.Event()
        self._closed = threading.Event()
        self._first = 0.0
        self._last = 0.0
        self._renamed_only = True
        self._recent: collections.deque[float] = collections.deque(maxlen=BURST_AFTER)

    def notice(self, renamed: bool = False) -> None:
        """A change; `renamed` if it was a complete file renamed into place."""
        with self._lock:
            now = time.monotonic()
            if not self._pending.is_set():
                self._first = now
                self._renamed_only = True
            self._renamed_only = self._renamed_only and renamed
            self._last = now
            self._pending.set()

    def wait(self, timeout: float) -> bool:
        """True once a notice is pending (or the debounce is closed); False if none came within timeout."""
        return self._pending.wait(timeout)

    def close(self) -> None:
        """End every wait at once: `wait` returns True and `settle` returns; for a stop."""
        self._closed.set()
        self._pending.set()

    def settle(self) -> None:
        """Block until a notice arrives and has settled, then clear it (or until closed)."""
        self._pending.wait()
        while not self._closed.is_set():
            with self._lock:
                now = time.monotonic()
                wait = remaining(
                    now,
                    self._first,
                    self._last,
                    self._recent,
                    self.calm,
                    self.burst,
                    self.burst_window,
                    self._renamed_only,
                )
                if wait <= 0:
                    self._pending.clear()
                    self._recent.append(now)
                    return
            self._closed.wait(wait)


class Reloader:
    """Turns settled file changes into validated reloads, one at a time; `stop()` ends
    `run()` and `answer_requests()` (its file watch too) and they return."""

    def __init__(self, settings: Settings, nginx: Nginx):
        self.settings = settings
        self.nginx = nginx
        self.debounce = Debounce(settings.reload_debounce_min, settings.reload_debounce_max)
        self.reloads = 0
        self._last_error = ""
        self._copies = lastgood.GoodCopies(
            settings.conf_dir, settings.run_dir / lastgood.STORE, settings.run_dir / rundir.WRITTEN
        )
        self._tested: Fingerprint | None = None  # the watched files as they were at the last nginx -t
        # Written whether or not the listener is on: `dynamic-nginx status` reads it.
        self.history = status.ReloadHistory(settings.run_dir / rundir.RELOAD_STATUS)
        self.asked = threading.Event()  # a reload asked for (SIGHUP to the container): see answer_requests
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.debounce.close()
        self.asked.set()

    def folders(self) -> list[Path]:
        folders = list(self.settings.watch_dirs)
        conf = self.settings.conf_dir
        if not any(conf == f or f in conf.parents for f in folders):
            folders.append(conf)
        return [f for f in folders if f.is_dir()]

    def run(self) -> None:
        """Watch the folders (and files mounted on their own) and reload after each
        settled change, until stop()."""
        files = filewatch.FileWatch(
            self.folders(), lambda renamed: self.debounce.notice(renamed), log, _ignored([self.settings.user_templates])
        ).start()
        try:
            log.info("watching %s", ", ".join(map(str, self.folders())))
            self._tested = self.fingerprint()
            if self._changed_while_away():
                self.debounce.notice()
            while not self._stopped.is_set():
                if not self.debounce.wait(RECONCILE_SECONDS):
                    self.reconcile()
                    continue
                self.debounce.settle()
                if not self._stopped.is_set():
                    self.record(time.time(), time.monotonic(), self.apply())
        finally:
            files.stop()

    def answer_requests(self) -> None:
        """Turn each setting of `asked` (SIGHUP to the container) into a validated
        reload, as the official image's nginx does, even when no file changed;
        until stop().

        An nginx -t error is said again even if it was said before: whoever sent
        the signal is waiting for the outcome.
        """
        while True:
            self.asked.wait()
            if self._stopped.is_set():
                return
            self.asked.clear()
            log.info("SIGHUP: nginx -t, then reload")
            self._last_error = ""
            self.debounce.notice(renamed=True)

    def fingerprint(self) -> Fingerprint:
        return fingerprint(self.folders(), [self.settings.user_templates])

    def reconcile(self) -> bool:
        """Notice a change whose event never came (see the module's docstring); True if one did."""
        if self._tested is None or self.fingerprint() == self._tested:
            return False
        log.info("files changed without a file event (inotify queue overflow?); testing them")
        self.debounce.notice()
        return True

    def _changed_while_away(self) -> bool:
        """True if files changed after nginx last loaded them (we were restarted meanwhile)."""
        stamps = [self.settings.run_dir / rundir.NGINX_STARTED, self.settings.run_dir / rundir.NGINX_RELOADED]
        loaded = max((s.stat().st_mtime for s in stamps if s.exists()), default=None)
        return loaded is not None and newest_mtime(self.folders()) > loaded

    def record(self, at: float, began: float, ok: bool) -> None:
        """Keep the outcome of apply() for the status: ok, invalid (nginx -t said why) or failed."""
        result = "ok" if ok else "invalid" if self._last_error else "failed"
        error = (
            self._last_error
            if result == "invalid"
            else ""
            if ok
            else "nginx did not start new workers after the reload signal"
        )
        if ok:  # before add(), which writes the history once, with the observation
            self.history.confirmed(self.settings.run_dir / rundir.APPLIED, at, time.time())
        self.history.add(at, time.monotonic() - began, result, error)
        health.note(self.settings.run_dir, result, error)

    def apply(self) -> bool:
        """Test, then reload; True if nginx now runs the files as they are.

        A generated file that nginx -t blames gets its last good version back
        (lastgood), so only the user's own files can keep a reload from happening.
        """
        self._tested = self.fingerprint()  # before the test: a change during it is seen by reconcile()
        tested = time.monotonic()
        result = lastgood.test_and_repair(self.nginx, self._copies, log)
        log.debug("nginx -t took %.0f ms", (time.monotonic() - tested) * 1000)
        if not result.ok:
            if result.message != self._last_error:
                log.error(
                    "nginx -t failed, not reloading; nginx keeps serving its last good configuration: %s",
                    result.message,
                )
            self._last_error = result.message
            return False
        if self._last_error:
            log.info("configuration is valid again")
            self._last_error = ""
        started = time.monotonic()
        if not self.nginx.reload():
            log.error("nginx did not start new workers after the reload signal; is nginx running?")
            return False
        self.reloads += 1
        try:
            (self.settings.run_dir / rundir.NGINX_RELOADED).touch()
        except OSError:
            pass  # only tells a restarted reloader what nginx has; it then tests once more
        log.info("reloaded nginx (#%d, %.0f ms)", self.reloads, (time.monotonic() - started) * 1000)
        return True
