"""template_watch: an edit of a user template puts a render request on the watcher's queue."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
from dynamic_nginx.template_watch import TEMPLATES_CHANGED, TemplateWatch


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
        assert watch.files.poller is not None and watch.files.poller.paths == [template]
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
    emitters: list[object] = []

    def schedule(self, *_args: object, **_kwargs: object) -> None:
        pass

    def start(self) -> None:
        raise OSError(28, "inotify watch limit reached")


def test_a_watch_without_inotify_polls_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("watchdog.observers.Observer", NoWatches)
    (tmp_path / "a.conf.j2").write_text("v1\n")
    events: queue.Queue[object] = queue.Queue()
    watch = TemplateWatch(tmp_path, events)
    watch.files.poll_seconds = 0.05
    watch.start()
    try:
        (tmp_path / "a.conf.j2").write_text("v2, longer\n")
        assert TEMPLATES_CHANGED in drain(events, 10)
    finally:
        watch.stop()
    assert caplog.messages[0].startswith(
        f"cannot watch {tmp_path} with inotify ([Errno 28] inotify watch limit reached); polling them every"
    )
