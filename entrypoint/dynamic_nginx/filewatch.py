"""Watching files: the one owner of watchdog observers and of the polling fallbacks.

The reloader (configuration folders) and the template watch (the user's
template folder) both ask this module to be told of changes under folders.
A watch is three parts, each started here and ended by `stop()`:

- an inotify observer on the folders (recursive);
- a polling observer instead, when inotify cannot be had (the host's
  fs.inotify.max_user_watches or max_user_instances is used up: they are
  shared by every container of a user), with one warning that says so;
- a poller for the files under the folders that are bind-mounted on their
  own, which inotify never reports (mounts.py says why and finds them).

watchdog is imported only when a watch starts: the first render, on the
start-up path, imports the watcher module and must not pay for it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import mounts

if TYPE_CHECKING:
    from watchdog.events import FileSystemEvent

CHANGE_TYPES = frozenset({"created", "modified", "deleted", "moved"})
POLL_SECONDS = 1.0  # the polling observer's interval, when inotify cannot be had
MOUNT_POLL_SECONDS = 0.5  # how often files mounted on their own are compared
JOIN_SECONDS = 5.0


def _paths(event: FileSystemEvent) -> list[str]:
    paths = (event.src_path, getattr(event, "dest_path", "") or "")
    return [os.fsdecode(p) for p in paths if p]


def counts(event: FileSystemEvent, ignored: Callable[[str], bool] = lambda _path: False) -> bool:
    """True for a change to a file's content or name (or a folder made, moved or
    removed) at a path not `ignored`; opens, reads and folder listings never count."""
    if event.event_type not in CHANGE_TYPES:
        return False
    if event.is_directory and event.event_type == "modified":
        return False
    return any(not ignored(path) for path in _paths(event))


def is_rename_into_place(event: FileSystemEvent, ignored: Callable[[str], bool] = lambda _path: False) -> bool:
    """True for a file renamed to a path not `ignored`: the way the watcher (and
    careful editors) write, so the file is complete the moment it appears."""
    dest = os.fsdecode(getattr(event, "dest_path", "") or "")
    return event.event_type == "moved" and not event.is_directory and bool(dest) and not ignored(dest)


Signature = tuple[int, int, int, int]


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FilePoller:
    """Calls `changed()` (from its own thread) when any of the files changes; `stop()` ends it."""

    def __init__(self, paths: Sequence[Path], changed: Callable[[], None], interval: float = MOUNT_POLL_SECONDS):
        self.paths = list(paths)
        self.changed = changed
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mounted-files", daemon=True)

    def start(self) -> FilePoller:
        if self.paths:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_SECONDS)

    def poll(self, seen: dict[Path, Signature | None]) -> bool:
        """Compare the files with `seen` (updated in place); True if any differed."""
        differed = False
        for path in self.paths:
            now = _signature(path)
            if seen.get(path, now) != now:
                differed = True
            seen[path] = now
        return differed

    def _run(self) -> None:
        seen: dict[Path, Signature | None] = {}
        self.poll(seen)
        while not self._stop.wait(self.interval):
            if self.poll(seen):
                self.changed()


class FileWatch:
    """Tells `changed(renamed)` of every change under the folders that `counts`;
    `renamed` is True for a file renamed into place. `stop()` ends every thread it started."""

    def __init__(
        self,
        folders: Iterable[Path],
        changed: Callable[[bool], None],
        log: logging.Logger,
        ignored: Callable[[str], bool] = lambda _path: False,
        poll_seconds: float = POLL_SECONDS,
        mount_poll_seconds: float = MOUNT_POLL_SECONDS,
    ):
        self.folders = [f for f in folders if f.is_dir()]
        self.changed = changed
        self.log = log
        self.ignored = ignored
        self.poll_seconds = poll_seconds
        self.mount_poll_seconds = mount_poll_seconds
        self.observer: Any = None  # watchdog's BaseObserver: inotify, or polling when inotify failed
        self.poller: FilePoller | None = None

    def on_event(self, event: FileSystemEvent) -> None:
        if counts(event, self.ignored):
            self.changed(is_rename_into_place(event, self.ignored))

    def start(self) -> FileWatch:
        if not self.folders:
            return self
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        on_event = self.on_event

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                on_event(event)

        handler = Handler()
        observer = Observer()
        for folder in self.folders:
            observer.schedule(handler, str(folder), recursive=True)
        try:
            observer.start()
        except OSError as error:
            for emitter in list(observer.emitters):  # the folders whose watch did start
                if emitter.is_alive():
                    emitter.stop()
            self.log.warning(
                "cannot watch %s with inotify (%s); polling them every %.0f s instead "
                "(raise fs.inotify.max_user_watches or max_user_instances on the host to get inotify back)",
                ", ".join(map(str, self.folders)),
                " ".join(str(error).split()),
                self.poll_seconds,
            )
            observer = PollingObserver(timeout=self.poll_seconds)
            for folder in self.folders:
                observer.schedule(handler, str(folder), recursive=True)
            observer.start()
        self.observer = observer
        files = mounts.mounted_files(self.folders)
        if files:
            self.log.info(
                "polling files mounted on their own (in-place edits only; mount folders to see every edit): %s",
                ", ".join(map(os.fspath, files)),
            )
        self.poller = FilePoller(files, lambda: self.changed(False), self.mount_poll_seconds).start()
        return self

    def stop(self) -> None:
        """End the observer and the poller and wait for their threads; twice is harmless."""
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(JOIN_SECONDS)
            self.observer = None
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
