"""template_watch: an edit of a user template puts a render request on the watcher's queue."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
from dynamic_nginx import template_watch
from dynamic_nginx.template_watch import TEMPLATES_CHANGED, TemplateWatch
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

T = "/etc/nginx/templates"


@pytest.mark.parametrize(
    ("event", "counted"),
    [
        pytest.param(FileModifiedEvent(f"{T}/a.conf.j2"), True, id="template edited"),
        pytest.param(FileCreatedEvent(f"{T}/b.conf.j2"), True, id="template added"),
        pytest.param(FileDeletedEvent(f"{T}/a.conf.j2"), True, id="template removed"),
        pytest.param(FileMovedEvent(f"{T}/.a.swp", f"{T}/a.conf.j2"), True, id="saved atomically"),
        pytest.param(DirCreatedEvent(f"{T}/partials"), True, id="folder of includes added"),
        pytest.param(DirModifiedEvent(T), False, id="folder listing changed"),
        pytest.param(FileOpenedEvent(f"{T}/a.conf.j2"), False, id="template read by a render"),
        pytest.param(FileClosedNoWriteEvent(f"{T}/a.conf.j2"), False, id="closed after reading"),
    ],
)
def test_counts(event: FileSystemEvent, counted: bool) -> None:
    assert template_watch.counts(event) is counted


def drain(events: queue.Queue[object], timeout: float) -> list[object]:
    """Everything that arrives within timeout after the first item (or nothing)."""
    try:
        items = [events.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            items.append(events.get(timeout=0.2))
        except queue.Empty:
            return items


def test_an_edit_puts_a_render_request_on_the_queue(tmp_path: Path) -> None:
    (tmp_path / "a.conf.j2").write_text("v1\n")
    events: queue.Queue[object] = queue.Queue()
    watch = TemplateWatch(tmp_path, events).start()
    try:
        assert drain(events, 0.3) == []  # starting the watch is not a change
        (tmp_path / "a.conf.j2").write_text("v2\n")
        got = drain(events, 10)
        assert got and set(got) == {TEMPLATES_CHANGED}
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "part.j2").write_text("x\n")  # an include in a subfolder
        assert TEMPLATES_CHANGED in drain(events, 10)
    finally:
        watch.stop()


def test_a_single_file_mounted_template_is_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = tmp_path / "a.conf.j2"
    template.write_text("v1\n")
    info = tmp_path / "mountinfo"
    info.write_text(f"1 2 0:1 /host/a.conf.j2 {template} rw - ext4 /dev/vda1 rw\n")
    monkeypatch.setattr("dynamic_nginx.mounts.MOUNTINFO", info)
    events: queue.Queue[object] = queue.Queue()
    watch = TemplateWatch(tmp_path, events).start()
    try:
        assert watch._poller is not None and watch._poller.paths == [template]
    finally:
        watch.stop()


def test_a_missing_folder_is_not_watched(tmp_path: Path) -> None:
    before = threading.active_count()
    watch = TemplateWatch(tmp_path / "missing", queue.Queue()).start()
    assert threading.active_count() == before
    watch.stop()


def test_stop_ends_the_observer_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    watch = TemplateWatch(tmp_path, queue.Queue()).start()
    assert set(threading.enumerate()) - before
    watch.stop()
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == [], left
    watch.stop()  # twice is harmless


class NoWatches:
    """An observer that fails to start, as when the inotify watch limit is reached."""

    daemon = False

    def schedule(self, *_args: object, **_kwargs: object) -> None:
        pass

    def start(self) -> None:
        raise OSError(28, "inotify watch limit reached")


def test_a_watch_that_cannot_start_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("watchdog.observers.Observer", NoWatches)
    watch = TemplateWatch(tmp_path, queue.Queue()).start()
    watch.stop()
    assert caplog.messages == [
        f"cannot watch {tmp_path} for template edits: [Errno 28] inotify watch limit reached"
    ]
