"""Template edits -> the watcher's event queue.

Docker events are not the only reason to render: a user who edits a mounted
template expects its output to follow. A watchdog observer on the user
template folder (and a poller for templates mounted as single files) puts
TEMPLATES_CHANGED on the watcher's queue, which then renders like after any
event, debounced the same way.

watchdog is imported only when a watch starts: the first render, on the
start-up path, imports the watcher module and must not pay for it.
"""

from __future__ import annotations

import logging
import queue
from pathlib import Path
from typing import Any

from . import mounts

log = logging.getLogger("watcher")
TEMPLATES_CHANGED = "templates changed"
_CHANGES = frozenset({"created", "modified", "deleted", "moved"})


def counts(event: Any) -> bool:
    """A change to a file's content or name; opens, reads and folder listings do not count."""
    if event.event_type not in _CHANGES:
        return False
    return not (event.is_directory and event.event_type == "modified")


class TemplateWatch:
    """Watches one template folder while the watcher follows Docker; `stop()` ends it."""

    def __init__(self, folder: Path, events: queue.Queue[object]):
        self.folder = folder
        self.events = events
        self._observer: Any = None
        self._poller: mounts.FilePoller | None = None

    def changed(self) -> None:
        self.events.put(TEMPLATES_CHANGED)

    def start(self) -> TemplateWatch:
        if not self.folder.is_dir():
            return self
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        changed = self.changed

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if counts(event):
                    changed()

        observer = Observer()
        observer.daemon = True
        observer.schedule(Handler(), str(self.folder), recursive=True)
        try:
            observer.start()
        except OSError as error:  # e.g. out of inotify watches: renders still follow Docker
            log.warning("cannot watch %s for template edits: %s", self.folder, error)
        else:
            self._observer = observer
        self._poller = mounts.watch([self.folder], self.changed, log.info)
        return self

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
