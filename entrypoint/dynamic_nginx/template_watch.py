"""Template edits -> the watcher's event queue.

Docker events are not the only reason to render: a user who edits a mounted
template expects its output to follow. A file watch (filewatch.py) on the
user template folder puts TEMPLATES_CHANGED on the watcher's queue, which
then renders like after any event, debounced the same way.
"""

from __future__ import annotations

import logging
import queue
from pathlib import Path

from .filewatch import FileWatch

log = logging.getLogger("watcher")
TEMPLATES_CHANGED = "templates changed"


class TemplateWatch:
    """Watches one template folder while the watcher follows Docker; `stop()` ends it."""

    def __init__(self, folder: Path, events: queue.Queue[object]):
        self.folder = folder
        self.events = events
        self.files = FileWatch([folder], self.changed, log)

    def changed(self, _renamed: bool = False) -> None:
        self.events.put(TEMPLATES_CHANGED)

    def start(self) -> TemplateWatch:
        self.files.start()
        return self

    def stop(self) -> None:
        self.files.stop()
